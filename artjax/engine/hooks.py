"""Periodic work of the training loop, as hooks that *return* what they decide.

A hook has an `every` (steps; 0 = off) and up to three moments: `start(info)` before the
first dispatch, `__call__(info)` after a dispatch when `due(info)`, `end(info)` after the
last one. Each gets a read-only `StepInfo` (step, state, data, the latest dispatch's device
metrics, ...) and returns an `Outcome` (or None): metrics or an evaluation to record, a
checkpoint to save, a best state to keep, a reason to stop, summary entries. Only the loop
(artjax.engine.loop) writes the run; a hook keeps nothing of the run but its own
bookkeeping. Hooks know tasks only through the Task interface (eval_key, members, evaluate,
summary_images, select_best). Adding one: subclass `Hook`, append it in `default_hooks`
(order = firing order), like levanter's `add_hook(fn, every=)`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from artjax import ConfigError
from artjax.engine import parallel, workdir as runs
from artjax.engine.writers import image_grid


@dataclasses.dataclass(frozen=True)
class StepInfo:
  """What a hook may read after a dispatch (nothing here is the hook's to change)."""
  step: int
  total: int
  state: Any                 # the run state after the dispatch (device arrays)
  data: Any                  # the dataset on device
  device_metrics: Any        # the dispatch's mean metrics, still on device
  device_report: Any         # the dispatch's guard report (finite, skipped, ...)
  last_dispatch: int         # steps in that dispatch
  steps_done: int            # steps run by this process so far
  elapsed: float             # seconds since the run was prepared
  interrupted: bool


@dataclasses.dataclass
class Outcome:
  """What a hook asks the loop to record or do (every field optional)."""
  metrics: dict | None = None        # host scalars of a dispatch (the run's latest metrics)
  eval: dict | None = None           # host scalars of an evaluation
  save: bool = False                 # save a checkpoint of the current step now
  best: dict | None = None           # a new best: best.json's content ...
  best_state: Any = None             # ... and the state to keep as best/ (saved at once)
  stop: str | None = None            # end the run ("early_stopped")
  nonfinite: tuple | None = None     # (first step, last step, host metrics): halt the run
  skipped: int = 0                   # steps dropped inside the dispatch (on_nonfinite=skip)
  summary: dict | None = None        # entries for summary.json
  state: Any = None                  # the state the run ends with (the best, at early stop)


def scalars(tree) -> dict:
  """{name: float}; a [members] vector becomes name/r0, name/r1, ... plus its mean."""
  out = {}
  for k, v in tree.items():
    v = np.asarray(v)
    if v.ndim == 0:
      out[k] = float(v)
    else:
      out[k] = float(v.mean())
      out.update({f"{k}/r{i}": float(x) for i, x in enumerate(v)})
  return out


class Hook:
  """Construction reads the run's fixed context (config, task, mesh, workdir); the moments
  get a StepInfo and return an Outcome or None."""
  every = 0

  def due(self, info: StepInfo) -> bool:
    return bool(self.every) and info.step % self.every == 0

  def start(self, info: StepInfo) -> Outcome | None:
    return None

  def __call__(self, info: StepInfo) -> Outcome | None:
    return None

  def end(self, info: StepInfo) -> Outcome | None:
    return None


class Metrics(Hook):
  """Reads each dispatch's metrics one dispatch behind (the host never waits on the device),
  logs them every `train.log_every` steps and at the end, drives the progress bar, and
  calls `on_dispatch(step, metrics)` (which may raise KeyboardInterrupt to stop). Returns the
  metrics, and a halt when they (or, with on_nonfinite=skip, max_skipped steps in a row)
  are not finite."""

  def __init__(self, run, writer, verbose, on_dispatch=None):
    self.every = run.config.train.steps_per_dispatch
    self.log_every, self.max_skipped = run.config.train.log_every, run.config.train.max_skipped
    self.writer, self.on_dispatch = writer, on_dispatch
    self.pending, self.skip_run = None, 0
    self.bar = tqdm(total=run.total, initial=run.step, disable=not verbose or run.total == run.step,
                    unit="step", dynamic_ncols=True, mininterval=1.0)

  def due(self, info):
    return True

  def _drain(self, info) -> Outcome:
    at, n, m, report = self.pending
    self.pending = None
    m, report = scalars(parallel.to_host(m)), parallel.to_host(report)
    out = Outcome(metrics=m)
    if "skipped" in report:
      out.skipped, out.nonfinite = self._skips(at, n, report)
    elif not report["finite"]:
      out.nonfinite = (at - n + 1, at, m)
    if self.log_every and at % self.log_every == 0 or at == info.total:
      self.writer.scalars(at, {**m, "steps_per_s": info.steps_done / max(info.elapsed, 1e-9)})
    self.bar.set_postfix({k: f"{v:.3f}" for k, v in list(m.items())[:4]}, refresh=False)
    if self.on_dispatch is not None:
      self.on_dispatch(at, m)
    return out

  def _skips(self, at, n, report):
    """train.on_nonfinite=skip: (steps dropped, a halt after max_skipped in a row or None)."""
    longest = max(int(report["longest"]), self.skip_run + int(report["leading"]))
    self.skip_run = self.skip_run + n if int(report["trailing"]) == n else int(report["trailing"])
    halt = None
    if max(longest, self.skip_run) >= self.max_skipped:
      halt = (at - n + 1, at, {f"{self.max_skipped} steps in a row": math.nan})
    return int(report["skipped"]), halt

  def __call__(self, info):
    self.bar.update(info.step - self.bar.n)
    out = self._drain(info) if self.pending is not None else None
    self.pending = (info.step, info.last_dispatch, info.device_metrics, info.device_report)
    return out

  def end(self, info):
    self.bar.close()
    if self.pending is not None and not info.interrupted:
      return self._drain(info)
    return None


class Checkpoint(Hook):
  """Asks for a checkpoint every `train.ckpt_every` steps (the final save is the loop's)."""

  def __init__(self, run):
    self.every = run.config.train.ckpt_every

  def due(self, info):
    return super().due(info) and info.step < info.total

  def __call__(self, info):
    return Outcome(save=True)


class Grid(Hook):
  """Sample grids (PNG under samples/ and TensorBoard) every `train.sample_every` steps,
  at step 0 and at the end."""

  def __init__(self, run, writer):
    self.every, self.log = run.config.train.sample_every, run.log
    self.writer, self.workdir, self.mesh = writer, run.workdir, run.mesh
    self.columns = run.task.grid_columns()
    # replicated outputs: every process holds the whole grid (no cross-process gather, which
    # only the writing process would join, under sharded weights)
    self.fn = (jax.jit(run.task.summary_images, out_shardings=parallel.replicated(run.mesh))
               if self.every else None)
    if self.every and run.log:
      os.makedirs(os.path.join(run.workdir, "samples"), exist_ok=True)

  def _write(self, info):
    with parallel.active_mesh(self.mesh):
      grids = parallel.to_host(self.fn(info.state))
    for tag, im in grids.items():
      suffix = tag.split("/", 1)[1] if "/" in tag else ""
      grid = image_grid(im, ncol=self.columns, scale=max(1, 64 // im.shape[1]))
      png = os.path.join(self.workdir, "samples",
                         f"step_{info.step:07d}{'_' + suffix if suffix else ''}.png")
      self.writer.image(info.step, tag, grid, png)

  def start(self, info):
    if self.every and info.step == 0:
      self._write(info)

  def __call__(self, info):
    self._write(info)

  def end(self, info):
    if self.every and self.log and not info.interrupted and info.step % self.every:
      self._write(info)


class Evaluate(Hook):
  """Evaluates every `train.eval_every` steps and at the end; a new best by the task's
  `eval_key` (per member for populations, selected on device) is returned for the loop to
  keep in best/; early stopping after `train.patience` evaluations without improvement,
  ending with the best state."""

  def __init__(self, run, writer):
    c = run.config.train
    self.every, self.patience, self.writer = c.eval_every, c.patience, writer
    self.fn = (jax.jit(run.task.evaluate, out_shardings=parallel.replicated(run.mesh))
               if self.every else None)
    self.task, self.mesh, self.sharding = run.task, run.mesh, run.sharding
    self.workdir, self.seed = run.workdir, run.config.seed
    self.key, self.members = run.task.eval_key, run.task.members
    self.best = (runs.best_info(run.workdir) if run.start_step is not None else None) or {}
    self.best_state, self.stopped = None, False
    if self.best and self.members > 1:   # resuming a population: each member's best so far
      self.best_state = self._restore_best(self.best["step"])

  def _restore_best(self, step):
    return runs.restore(self.workdir, self.task, self.seed, best=True, step=step,
                        sharding=self.sharding)

  def due(self, info):
    return super().due(info) or (bool(self.every) and info.step == info.total)

  def __call__(self, info):
    with parallel.active_mesh(self.mesh):
      raw = parallel.to_host(self.fn(info.state, info.data))
    out = Outcome(eval=scalars(raw))
    self.writer.scalars(info.step, {f"eval/{k}": v for k, v in out.eval.items()})
    if self.key and self.key in raw:
      out.best, out.best_state = self._track(info, np.asarray(raw[self.key], np.float64).reshape(-1))
    if self.patience and self.best:
      last = max(self.best.get("replica_steps", [self.best["step"]]))
      if info.step - last >= self.patience * self.every:
        out.stop, self.stopped = "early_stopped", True
    return out

  def _track(self, info, vals):
    """(best.json content, state to keep) when `vals` improve on the best so far."""
    prev = np.asarray(self.best.get("values", [self.best.get("value", np.inf)] * len(vals)))
    better = vals < prev
    if not better.any():
      return None, None
    if self.members > 1:
      steps = np.where(better, info.step, self.best.get("replica_steps", [info.step] * len(vals)))
      vals = np.where(better, vals, prev)
      self.best = {"step": info.step, "metric": self.key, "value": float(vals.min()),
                   "values": vals.tolist(), "replica_steps": [int(x) for x in steps]}
      # A fresh copy: the run's state buffers are donated to the next dispatch.
      self.best_state = jax.jit(self.task.select_best, out_shardings=self.sharding)(
          better, info.state, info.state if self.best_state is None else self.best_state)
      return dict(self.best), self.best_state
    self.best = {"step": info.step, "metric": self.key, "value": float(vals[0])}
    return dict(self.best), info.state

  def end(self, info):
    if not self.best:
      return None
    out = Outcome(summary={"best": self.best})
    if self.stopped:
      out.summary.update(early_stopped_at=info.step, restored_best_step=self.best["step"])
      out.state = self._restore_best(self.best["step"])
    return out


def profile_range(t) -> tuple | None:
  """(a, b) from train.profile_steps "a,b" (None when empty); ConfigError when malformed."""
  spec = str(t.profile_steps or "").strip()
  if not spec:
    return None
  parts = spec.split(",")
  if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
    raise ConfigError(f"train.profile_steps={spec!r}: expected \"a,b\" (first and last step)")
  a, b = (int(p) for p in parts)
  if not 1 <= a <= b <= t.steps:
    raise ConfigError(f"train.profile_steps={spec!r}: need 1 <= a <= b <= train.steps={t.steps}")
  return a, b


class Profile(Hook):
  """A `jax.profiler` trace of the dispatches that run steps a..b (train.profile_steps),
  written to WORKDIR/profile (`tensorboard --logdir WORKDIR/profile`, profile plugin)."""

  def __init__(self, run):
    self.range = profile_range(run.config.train) if run.log else None
    self.every = run.config.train.steps_per_dispatch if self.range else 0
    self.dir = os.path.join(run.workdir, "profile")
    self.tracing = False

  def _maybe_start(self, info):
    a, b = self.range
    if not self.tracing and info.step < a <= info.step + self.every and info.step < b:
      jax.profiler.start_trace(self.dir)
      self.tracing = True

  def start(self, info):
    if self.range:
      self._maybe_start(info)

  def __call__(self, info):
    if self.tracing and info.step >= self.range[1]:
      self.end(info)
    elif self.range:
      self._maybe_start(info)

  def end(self, info):
    if self.tracing:
      jax.block_until_ready(info.state)
      jax.profiler.stop_trace()
      self.tracing = False
      tqdm.write(f"profile of steps {self.range[0]}..{info.step} written to {self.dir} "
                 f"(tensorboard --logdir {self.dir})")


def default_hooks(run, writer, verbose: bool, on_dispatch=None) -> list:
  return [Profile(run), Metrics(run, writer, verbose, on_dispatch), Checkpoint(run),
          Grid(run, writer), Evaluate(run, writer)]

