"""A run directory (workdir): the one API every command reads runs through.

    workdir/config.json           the run's full config
    workdir/checkpoints/STEP/     Orbax checkpoints of the whole state (the last train.keep)
    workdir/best/checkpoints/S/   the best state by the task's eval_key (train.eval_every)
    workdir/best.json             {"step", "metric", "value" (, per-member "values", "steps")}
    workdir/metrics.jsonl, summary.json, samples/, tb/

`open_run(workdir)` gives (task, state) for sampling, evaluation, merging and (later)
export and serving; the training loop uses the same pieces with the mesh's sharding.
"""

from __future__ import annotations

import datetime
import fcntl
import functools
import json
import os
import socket
import sys

import jax
import jax.numpy as jnp
import ml_collections

from configs import common

from artjax import ConfigError, checkpoint, compress
from artjax.tasks import Pruned, build_task, quant_bits

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


def with_shared_defaults(config) -> ml_collections.ConfigDict:
  """A copy of a stored config with the shared blocks' fields that were added after it was
  written (configs/common.py) filled in with their defaults, for a run derived from it."""
  new = config.copy_and_resolve_references()
  for name in ("train", "mesh", "distributed", "finetune", "prune", "deploy"):
    fresh = getattr(common, name)()
    if name not in new:
      new[name] = fresh
      continue
    for k, v in fresh.items():
      if k not in new[name]:
        new[name][k] = v
  return new


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


def _restore_quantized(workdir: str, task, config, step, best):
  """(stored, unpack) of a `run.py quantize` workdir: the packed weights and the pure
  function that rebuilds the inference state from them."""
  bits = quant_bits(config)
  like = lambda seed: task.inference_state(task.init_state(seed))
  template = jax.eval_shape(like, config.seed)
  if best:
    raise ConfigError(f"{workdir!r} is a quantised run: it has one checkpoint (no --best)")
  stored = checkpoint.restore_checked(workdir, lambda seed: compress.quantize(like(seed), bits),
                                      config.seed, step=step)
  return stored, functools.partial(compress.dequantize, like=template)


def _check_finite(state, workdir: str) -> None:
  bad = [jax.tree_util.keystr(p) for p, x in jax.tree_util.tree_flatten_with_path(state)[0]
         if jnp.issubdtype(x.dtype, jnp.inexact) and not bool(jnp.all(jnp.isfinite(x)))]
  if bad:
    raise ConfigError(f"the checkpoint at step {int(state['step'])} in {workdir!r} has "
                      f"non-finite weights ({bad[0]}{' and more' if len(bad) > 1 else ''}): "
                      "the run diverged; retrain with a lower optim.lr")


def open_run(workdir: str, *, step: int | None = None, best: bool = False,
             replica: int | None = None):
  """(task, state) of a workdir, on one device. For a population, `replica` picks one
  member and the inner task is returned; a pruned run gives its inner task; a quantised
  run gives its inference state, dequantised."""
  config = load_config(workdir)
  task = build_task(config)
  if quant_bits(config):
    stored, unpack = _restore_quantized(workdir, task, config, step, best)
    state = jax.jit(unpack)(stored)
  else:
    state = restore(workdir, task, config.seed, step=step, best=best)
  _check_finite(state, workdir)
  if task.members > 1:   # a population
    if replica is None:
      raise ConfigError(f"{workdir!r} holds a population of {task.replicas} replicas: pass "
                        f"--replica=0..{task.replicas - 1}")
    return task.member(state, replica)
  if replica is not None:
    raise ConfigError(f"--replica: {workdir!r} holds a single model, not a population")
  if isinstance(task, Pruned):
    return task.inner, Pruned.strip(state)
  return task, state


def open_stored(workdir: str, *, best: bool = False):
  """(task, stored, unpack) for export: the inference weights as stored (a quantised run's
  int8/int4 arrays) and the pure function giving the state `task.sampler` reads."""
  config = load_config(workdir)
  if quant_bits(config):
    task = build_task(config)
    stored, unpack = _restore_quantized(workdir, task, config, None, best)
    _check_finite(stored, workdir)
    return task, stored, unpack
  task, state = open_run(workdir, best=best)
  if task.members > 1:
    raise ConfigError(f"{workdir!r} holds a population: export one replica's run")
  return task, task.inference_state(state), lambda s: s


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
