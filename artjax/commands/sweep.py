"""`run.py sweep`: a grid of config overrides, trained as few programs as possible.

  python run.py sweep --config=configs/gan.py:digits --workdir=W \\
      --sweep="optim.lr=1e-4,4e-4;gan.ema_decay=0.0,0.999" [--config.x=y ...]

Cells (one per combination) that differ only in hyper-parameters a population can vary per
replica (`POPULATION_FIELDS` that the task lists in `hparams`) share every shape: they train
together as one population (one vmapped program, replica r = cell r); cells that differ in
anything else (a width, a model, a batch size) are separate groups, trained one after
another. Each group has its own workdir under W; W/sweep.json lists every cell (overrides,
workdir, replica, final and best metrics) and W/sweep.md is the same as a table. Rerunning
resumes unfinished groups (their checkpoints) and skips finished ones.
"""

from __future__ import annotations

import ast
import copy
import itertools
import json
import os
import re

from absl import flags

from artjax import ConfigError
from artjax.commands.options import define_config, need
from artjax.engine import checkpoint, workdir as runs
from artjax.tasks import build_task

#: config path -> population field (artjax.tasks.wrap): varied per replica in one run.
POPULATION_FIELDS = {"optim.lr": "lr", "optim.d_lr": "d_lr",
                     "optim.weight_decay": "weight_decay", "gan.ema_decay": "ema_decay"}


def parse(spec: str) -> list[tuple[str, list]]:
  """"a.b=1,2;c=x,y" -> [("a.b", [1, 2]), ("c", ["x", "y"])] (values as Python literals,
  else strings)."""
  axes = []
  for part in (p for p in spec.split(";") if p.strip()):
    key, eq, vals = part.partition("=")
    key = key.strip()
    values = [_literal(v.strip()) for v in vals.split(",") if v.strip()]
    if not eq or not key or not values:
      raise ConfigError(f"--sweep={spec!r}: expected \"key=v1,v2;key2=v3,...\"")
    if key in dict(axes):
      raise ConfigError(f"--sweep: {key} appears twice")
    axes.append((key, values))
  if not axes:
    raise ConfigError("sweep needs --sweep=\"key=v1,v2;...\" (config fields and their values)")
  return axes


def _literal(s: str):
  try:
    return ast.literal_eval(s)
  except (ValueError, SyntaxError):
    return s


def _set(config, key: str, value) -> None:
  *path, last = key.split(".")
  node = config
  for p in path:
    if p not in node:
      raise ConfigError(f"--sweep: no config field {key!r}")
    node = node[p]
  if last not in node:
    raise ConfigError(f"--sweep: no config field {key!r}")
  old = node[last]
  if isinstance(value, bool) != isinstance(old, bool) and isinstance(old, (bool, int, float)):
    raise ConfigError(f"--sweep: {key}={value!r}: the field holds a {type(old).__name__} "
                      f"({old!r}), not a {type(value).__name__}")
  try:
    node[last] = value
  except (TypeError, ValueError) as e:
    raise ConfigError(f"--sweep: {key}={value!r}: {e}") from None


def cells(axes) -> list[dict]:
  keys = [k for k, _ in axes]
  return [dict(zip(keys, combo)) for combo in itertools.product(*[v for _, v in axes])]


def groups(config, grid: list[dict]) -> list[tuple[dict, list[dict]]]:
  """[(fixed overrides, [cells])]: cells sharing the overrides that are not population
  fields of this task train as one population (in grid order)."""
  hparams = build_task(config).hparams
  varied = lambda k: k in POPULATION_FIELDS and POPULATION_FIELDS[k] in hparams
  out: dict = {}
  for cell in grid:
    fixed = tuple((k, v) for k, v in cell.items() if not varied(k))
    out.setdefault(fixed, []).append(cell)
  return [(dict(k), v) for k, v in out.items()]


def group_config(config, fixed: dict, members: list[dict]):
  """The config of one group: `fixed` overrides, and for several members a population with
  one replica per member (the base value of each varied field = its largest, so that e.g.
  EMA is on when any member uses it; replicas get their own values)."""
  c = copy.deepcopy(config)
  for k, v in fixed.items():
    _set(c, k, v)
  varied = [k for k in members[0] if k not in fixed]
  if len(members) == 1:
    for k in varied:
      _set(c, k, members[0][k])
    return c
  c.train.num_replicas = len(members)
  for k in varied:
    values = [float(m[k]) for m in members]
    _set(c, k, max(values))
    _set(c, f"population.{POPULATION_FIELDS[k]}", tuple(values))
  return c


def _name(fixed: dict, index: int) -> str:
  """The member's folder name: its index and values, every character outside [A-Za-z0-9.=,-]
  replaced by '_' (a value never becomes a path component: no '/', no '..' alone)."""
  tag = "_".join(f"{k.split('.')[-1]}={v}" for k, v in fixed.items())
  tag = re.sub(r"[^A-Za-z0-9.=,-]", "_", tag).replace("..", "__")[:120]
  return f"g{index:02d}" + (f"_{tag}" if tag else "")


def _finished(workdir: str, steps: int) -> dict | None:
  path = os.path.join(workdir, "summary.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    s = json.load(f)
  return s if s.get("step") == steps and s.get("status") in ("finished", "early_stopped") else None


_REPLICA_KEY = re.compile(r"^(.*)/r(\d+)$")
_SKIP = {"step", "status", "steps_this_run", "wall_s", "steps_per_s", "interrupted", "mesh",
         "best", "param_bytes_per_device", "opt_bytes_per_device", "state_bytes_per_device"}


def group_metrics(summary: dict, best: dict | None, replicas: int) -> list[tuple[dict, dict]]:
  """(final metrics, best) of each member of a group, reading the summary once: time linear
  in its size (a 1,000-member population tabulates in well under a second)."""
  base, per = {}, {}
  for k, v in summary.items():
    if k in _SKIP or not isinstance(v, (int, float)) or isinstance(v, bool):
      continue
    m = _REPLICA_KEY.match(k)
    if m:
      per[(m.group(1), int(m.group(2)))] = v
    else:
      base[k] = v
  out = []
  for r in range(replicas):
    final = {k: per.get((k, r), v) for k, v in base.items()} if replicas > 1 else dict(base)
    b = {}
    if best:
      b = {"metric": best.get("metric"),
           "value": best["values"][r] if replicas > 1 and "values" in best else best.get("value"),
           "step": best["replica_steps"][r] if replicas > 1 and "replica_steps" in best else best.get("step")}
    out.append((final, b))
  return out


def run_sweep(config, workdir: str, spec: str, train_fn) -> list[dict]:
  """Trains every group (skipping finished ones); writes and returns sweep.json's rows."""
  grid = cells(parse(spec))
  for cell in grid:   # every field exists and takes its values (ConfigError otherwise)
    probe = copy.deepcopy(config)
    for k, v in cell.items():
      _set(probe, k, v)
  plan = groups(config, grid)
  configs = [group_config(config, fixed, members) for fixed, members in plan]
  for c in configs:
    build_task(c)   # every group's config validated before anything trains
  os.makedirs(workdir, exist_ok=True)
  rows = []
  with _SigtermBetweenCells() as stop:
    for i, ((fixed, members), c) in enumerate(zip(plan, configs)):
      wd = os.path.join(workdir, _name(fixed, i))
      summary = _finished(wd, c.train.steps)
      skipped = summary is not None or checkpoint.latest_step(wd) is not None   # or resumed
      if summary is None and (stop.pending or any(r["status"] in ("interrupted", "not_run")
                                                   for r in rows)):
        summary = {"status": "not_run"}     # the sweep was stopped: a rerun resumes here
      elif summary is None:
        print(f"sweep: group {i + 1}/{len(plan)} {wd}: {len(members)} cell(s)"
              + (" as one population" if len(members) > 1 else ""), flush=True)
        summary = train_fn(c, wd)
      best = runs.best_info(wd) if summary["status"] != "not_run" else {}
      rows += [{"overrides": cell, "workdir": wd, "replica": r if len(members) > 1 else None,
                "status": summary.get("status"), "resumed_or_skipped": skipped,
                "final": final, "best": b}
               for r, (cell, (final, b)) in enumerate(
                   zip(members, group_metrics(summary, best, len(members))))]
  _write(workdir, rows)
  return rows


class _SigtermBetweenCells:
  """A SIGTERM while the sweep is between its runs (each run handles its own) stops the sweep
  before the next group: the remaining groups are written as not_run and the command exits
  as interrupted (3); rerunning it resumes them."""

  def __init__(self):
    self.pending, self.installed = False, False

  def _handler(self, signum, frame):
    self.pending = True

  def __enter__(self):
    import signal
    import threading
    if threading.current_thread() is threading.main_thread():
      self.prev = signal.signal(signal.SIGTERM, self._handler)
      self.installed = True
    return self

  def __exit__(self, *exc):
    import signal
    if self.installed:
      signal.signal(signal.SIGTERM, self.prev)


def _write(workdir: str, rows: list[dict]) -> None:
  with open(os.path.join(workdir, "sweep.json"), "w") as f:
    json.dump(rows, f, indent=1)
  keys = list(rows[0]["overrides"])
  metrics = sorted({k for r in rows for k in r["final"]})
  lines = ["| " + " | ".join(keys + ["workdir", "replica"] + metrics + ["best"]) + " |",
           "|" + "---|" * (len(keys) + 3 + len(metrics))]
  for r in rows:
    b = r["best"]
    best = f"{b['metric']} {b['value']:.4g} @ {b['step']}" if b.get("value") is not None else ""
    lines.append("| " + " | ".join([str(r["overrides"][k]) for k in keys]
                                    + [os.path.basename(r["workdir"]), str(r["replica"] if r["replica"] is not None else "")]
                                    + [f"{r['final'][m]:.4g}" if isinstance(r["final"].get(m), (int, float)) else ""
                                       for m in metrics] + [best]) + " |")
  with open(os.path.join(workdir, "sweep.md"), "w") as f:
    f.write("\n".join(lines) + "\n")


SUMMARY = "a grid of runs; cells that share shapes train as one population; sweep.json/.md"
USAGE = 'sweep --config=C --workdir=W --sweep="optim.lr=1e-4,4e-4;model.width=32,64"'


def define(fv, argv):
  define_config(fv, argv)
  flags.DEFINE_string("workdir", None, "The sweep's directory (one workdir per group).",
                      flag_values=fv)
  flags.DEFINE_string("sweep", None, "\"key=v1,v2;key2=v3,v4\": config fields and values (the "
                      "grid's cells sharing shapes train as one population).", flag_values=fv)


def run(FLAGS, args, argv):
  from artjax.tasks.training import train
  need(FLAGS, "config", "workdir", "sweep", command="sweep")
  rows = run_sweep(FLAGS.config, FLAGS.workdir, FLAGS.sweep, lambda c, wd: train(c, wd))
  print(f"sweep: {len(rows)} cells; {os.path.join(FLAGS.workdir, 'sweep.md')}")
  if any(r["status"] == "not_run" for r in rows):
    print("sweep: interrupted; groups marked not_run did not train: rerun the same command to "
          "resume", flush=True)
  bad = [r for r in rows if r["status"] not in ("finished", "early_stopped")]
  return 3 if bad else 0
