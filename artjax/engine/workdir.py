"""A run directory (workdir): the one API every command reads runs through.

    workdir/config.json           the run's full config
    workdir/checkpoints/STEP/     Orbax checkpoints of the whole state (the last train.keep)
    workdir/best/checkpoints/S/   the best state by the task's eval_key (train.eval_every)
    workdir/best.json             {"step", "metric", "value" (, per-member "values", "steps")}
    workdir/metrics.jsonl, summary.json, samples/, tb/

This module knows no task: `restore` takes any object with `init_state` (shapes are checked
against it). `artjax.tasks.open_run(workdir)` builds a workdir's task and restores its state.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import shutil
import socket
import sys

import ml_collections

from artjax import ConfigError
from artjax.engine import checkpoint

CONFIG = "config.json"
LOCK = ".lock"
BEST = "best"
BEST_JSON = "best.json"


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, CONFIG)
  if not os.path.exists(path):
    raise ConfigError(f"no config.json in workdir {workdir!r}: train a model there first")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def _flat(d, prefix=""):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def write_config(workdir: str, config, resumed_at: int | None = None) -> None:
  """Writes config.json. On a resume whose config differs from the stored one (steps,
  cadences, learning rates: anything that leaves the state's shapes alone), prints a note
  and appends the changes to config_history.jsonl."""
  path = os.path.join(workdir, CONFIG)
  text = config.to_json_best_effort(indent=2, sort_keys=True)
  if resumed_at is not None and os.path.exists(path):
    with open(path) as f:
      old = _flat(json.load(f))
    new = _flat(json.loads(text))
    changes = {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new))
               if old.get(k) != new.get(k)}
    if changes:
      print("note: resuming at step {} with a changed config: {}".format(
          resumed_at, ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items())),
          file=sys.stderr, flush=True)
      with open(os.path.join(workdir, "config_history.jsonl"), "a") as f:
        f.write(json.dumps({"step": resumed_at, "changes": changes}) + "\n")
  with open(path, "w") as f:
    f.write(text)


def best_info(workdir: str) -> dict | None:
  path = os.path.join(workdir, BEST_JSON)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def manager(workdir: str, *, best: bool = False, keep: int = 1, create: bool = False):
  return checkpoint.manager(os.path.join(workdir, BEST) if best else workdir, keep=keep,
                            create=create)


def restore(workdir: str, task, seed: int, *, step: int | None = None, best: bool = False,
            sharding=None):
  """The state at `step` (default: the latest, or the best with `best=True`), checked
  against the task's state shapes (a ConfigError naming the first mismatch)."""
  if best:
    info = best_info(workdir)
    if info is None:
      raise ConfigError(f"no best checkpoint in {workdir!r} (train with train.eval_every > 0)")
    step = info["step"] if step is None else step
  return checkpoint.restore_checked(os.path.join(workdir, BEST) if best else workdir,
                                    task.init_state, seed, step=step, sharding=sharding)


def write_run(out: str, config, step: int, state) -> None:
  """A workdir holding one checkpoint, `state` at `step`, and its config (merge, quantize,
  prune); removed again if writing fails."""
  os.makedirs(out, exist_ok=True)
  try:
    write_config(out, config)
    mgr = checkpoint.manager(out, keep=1, create=True)
    checkpoint.save_and_wait(mgr, step, state, force=True)
    mgr.close()
  except BaseException:
    shutil.rmtree(out, ignore_errors=True)
    raise


class WorkdirLock:
  """One writer per workdir: an OS lock (flock) on `workdir/.lock`, held for the whole run.

  A second trainer fails at once with one line naming the holder (pid, host, start time).
  The kernel drops the lock when its process dies, so a lock file left by a killed run is
  simply taken over (with a note). Multi-host runs: process 0 holds it."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK)
    self.fd = None

  def _holder(self, fd) -> dict:
    try:
      return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
      return {}

  def acquire(self) -> None:
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError:
        h = self._holder(fd)
        os.close(fd)
        raise ConfigError(f"workdir {os.path.dirname(self.path)!r} is in use by another run "
                          f"(pid {h.get('pid', '?')} on {h.get('host', '?')} since "
                          f"{h.get('started', '?')}): one writer per workdir")
      try:   # the file may have been removed by the previous holder's release
        same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
      except FileNotFoundError:
        same = False
      if same:
        break
      os.close(fd)
    old = self._holder(fd)
    if old.get("pid"):
      print(f"note: taking over the lock of a run that ended without releasing it (pid "
            f"{old['pid']} on {old.get('host', '?')}, started {old.get('started', '?')})",
            file=sys.stderr, flush=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started": datetime.datetime.now().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    self.fd = fd

  def release(self) -> None:
    if self.fd is None:
      return
    try:
      os.remove(self.path)
    except FileNotFoundError:
      pass
    fcntl.flock(self.fd, fcntl.LOCK_UN)
    os.close(self.fd)
    self.fd = None


#: what a run writes into its workdir (a non-empty directory holding anything else is not a run)
RUN_FILES = ("config.json", "checkpoints", "metrics.jsonl", "summary.json", "tb", "samples",
             "digests", "best", "best.json", ".lock")


def check_workdir(workdir: str) -> bool:
  """Creates `workdir` if needed and checks it is writable; True when it was created.
  One rule for every run: a workdir is absent, empty, or an artjax run (its config.json or
  only files a run writes); `/`, the home directory and a folder of other files are refused."""
  if not workdir:
    raise ConfigError("--workdir is required")
  real = os.path.realpath(workdir)
  if real in ("/", os.path.realpath(os.path.expanduser("~"))):
    raise ConfigError(f"--workdir={workdir!r} is {'the root' if real == '/' else 'the home'} "
                      "directory: name a new folder for the run (e.g. runs/NAME)")
  if os.path.isdir(workdir):
    entries = [e for e in os.listdir(workdir) if not e.startswith(".write_probe_")]
    own = "config.json" in entries and _is_run_config(os.path.join(workdir, "config.json"))
    if entries and not own and not set(entries) <= set(RUN_FILES) - {"config.json"}:
      raise ConfigError(f"--workdir={workdir!r} holds files that are not an artjax run "
                        f"({', '.join(sorted(entries)[:3])}{' ...' if len(entries) > 3 else ''}): "
                        "name a new or empty folder")
  elif os.path.exists(workdir):
    raise ConfigError(f"--workdir={workdir!r} is a file, not a directory")
  created = not os.path.exists(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_probe_{os.getpid()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise ConfigError(f"workdir {workdir!r} is not writable: {e.strerror or e}") from e
  return created


def _is_run_config(path: str) -> bool:
  """Whether `path` is a config.json that artjax wrote (a task and a train block), not a
  user's own file of that name."""
  try:
    with open(path, encoding="utf-8") as f:
      c = json.load(f)
  except (OSError, ValueError):
    return False
  return isinstance(c, dict) and isinstance(c.get("task"), str) and isinstance(c.get("train"), dict)
