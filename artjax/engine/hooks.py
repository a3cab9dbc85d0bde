"""Periodic actions of the training loop. Each hook has an `every` (steps; 0 = off) and up
to three moments: `start(run)` before the first dispatch, `__call__(run)` after a dispatch
when `due(run)`, `end(run)` after the last one. Adding one: subclass `Hook`, append it in
`default_hooks` (order = firing order). Hooks read and write the `Run` (artjax.engine.loop); they
know tasks only through the Task interface (eval_key, members, evaluate, summary_images).
"""

from __future__ import annotations

import json
import math
import os

import jax
import numpy as np
from tqdm.auto import tqdm

from artjax import ConfigError
from artjax.engine import checkpoint, parallel, workdir as runs
from artjax.engine.writers import image_grid


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
  every = 0

  def due(self, run) -> bool:
    return bool(self.every) and run.step % self.every == 0

  def start(self, run) -> None:
    pass

  def __call__(self, run) -> None:
    pass

  def end(self, run) -> None:
    pass


class Metrics(Hook):
  """Reads each dispatch's metrics one dispatch behind (the host never waits on the device),
  logs them every `train.log_every` steps and at the end, drives the progress bar, and
  calls `on_dispatch(step, metrics)` (which may raise KeyboardInterrupt to stop)."""

  def __init__(self, run, writer, verbose, on_dispatch=None):
    self.every = run.config.train.steps_per_dispatch
    self.log_every = run.config.train.log_every
    self.writer, self.on_dispatch = writer, on_dispatch
    self.pending = None
    self.bar = tqdm(total=run.total, initial=run.step, disable=not verbose or run.total == run.step,
                    unit="step", dynamic_ncols=True, mininterval=1.0)

  def due(self, run):
    return True

  def _drain(self, run):
    at, n, m, report = self.pending
    self.pending = None
    m, report = scalars(parallel.to_host(m)), parallel.to_host(report)
    run.metrics = m
    if "skipped" in report:
      self._skips(run, at, n, report)
    elif not report["finite"]:
      run.note_nonfinite(at - n + 1, at, m)
    if self.log_every and at % self.log_every == 0 or at == run.total:
      self.writer.scalars(at, {**m, "steps_per_s": run.steps_done / max(run.elapsed(), 1e-9)})
    self.bar.set_postfix({k: f"{v:.3f}" for k, v in list(m.items())[:4]}, refresh=False)
    if self.on_dispatch is not None:
      self.on_dispatch(at, m)

  def _skips(self, run, at, n, report):
    """train.on_nonfinite=skip: count dropped steps; halt after max_skipped in a row."""
    run.skipped += int(report["skipped"])
    longest = max(int(report["longest"]), run.skip_run + int(report["leading"]))
    run.skip_run = run.skip_run + n if int(report["trailing"]) == n else int(report["trailing"])
    if max(longest, run.skip_run) >= run.config.train.max_skipped:
      run.note_nonfinite(at - n + 1, at, {f"{run.config.train.max_skipped} steps in a row": math.nan})

  def __call__(self, run):
    self.bar.update(run.step - self.bar.n)
    if self.pending is not None:
      self._drain(run)
    self.pending = (run.step, run.last_dispatch, run.device_metrics, run.device_report)

  def end(self, run):
    self.bar.close()
    if self.pending is not None and not run.interrupted:
      self._drain(run)


class Checkpoint(Hook):
  """Saves the state every `train.ckpt_every` steps (the final save is the run's own)."""

  def __init__(self, run):
    self.every = run.config.train.ckpt_every

  def due(self, run):
    return super().due(run) and run.step < run.total

  def __call__(self, run):
    run.save()


class Grid(Hook):
  """Sample grids (PNG under samples/ and TensorBoard) every `train.sample_every` steps,
  at step 0 and at the end."""

  def __init__(self, run, writer):
    self.every = run.config.train.sample_every
    self.writer = writer
    # replicated outputs: every process holds the whole grid (no cross-process gather, which
    # only the writing process would join, under sharded weights)
    self.fn = (jax.jit(run.task.summary_images, out_shardings=parallel.replicated(run.mesh))
               if self.every else None)
    if self.every and run.log:
      os.makedirs(os.path.join(run.workdir, "samples"), exist_ok=True)

  def _write(self, run):
    with parallel.active_mesh(run.mesh):
      grids = parallel.to_host(self.fn(run.state))
    for tag, im in grids.items():
      suffix = tag.split("/", 1)[1] if "/" in tag else ""
      grid = image_grid(im, ncol=run.task.grid_columns(), scale=max(1, 64 // im.shape[1]))
      png = os.path.join(run.workdir, "samples",
                         f"step_{run.step:07d}{'_' + suffix if suffix else ''}.png")
      self.writer.image(run.step, tag, grid, png)

  def start(self, run):
    if self.every and run.step == 0:
      self._write(run)

  def __call__(self, run):
    self._write(run)

  def end(self, run):
    if self.every and run.log and not run.interrupted and run.step % self.every:
      self._write(run)


class Evaluate(Hook):
  """Evaluates every `train.eval_every` steps and at the end; keeps the best state by the
  task's `eval_key` in best/ (per member for populations, selected on device); early stopping
  after `train.patience` evaluations without improvement, restoring the best state."""

  def __init__(self, run, writer):
    c = run.config.train
    self.every, self.patience, self.writer = c.eval_every, c.patience, writer
    self.fn = (jax.jit(run.task.evaluate, out_shardings=parallel.replicated(run.mesh))
               if self.every else None)
    self.key = run.task.eval_key
    self.members = run.task.members
    self.best = (runs.best_info(run.workdir) if run.start_step is not None else None) or {}
    self.best_state = None
    if self.best and self.members > 1:   # resuming a population: each member's best so far
      self.best_state = runs.restore(run.workdir, run.task, run.config.seed, best=True,
                                     step=self.best["step"], sharding=run.sharding)

  def due(self, run):
    return super().due(run) or (bool(self.every) and run.step == run.total)

  def __call__(self, run):
    with parallel.active_mesh(run.mesh):
      raw = parallel.to_host(self.fn(run.state, run.data))
    run.last_eval = scalars(raw)
    self.writer.scalars(run.step, {f"eval/{k}": v for k, v in run.last_eval.items()})
    if self.key and self.key in raw:
      self._track(run, np.asarray(raw[self.key], np.float64).reshape(-1))
    if self.patience and self.best:
      last = max(self.best.get("replica_steps", [self.best["step"]]))
      if run.step - last >= self.patience * self.every:
        run.stop = "early_stopped"

  def _track(self, run, vals):
    prev = np.asarray(self.best.get("values", [self.best.get("value", np.inf)] * len(vals)))
    better = vals < prev
    if not better.any():
      return
    if self.members > 1:
      steps = np.where(better, run.step, self.best.get("replica_steps", [run.step] * len(vals)))
      vals = np.where(better, vals, prev)
      self.best = {"step": run.step, "metric": self.key, "value": float(vals.min()),
                   "values": vals.tolist(), "replica_steps": [int(x) for x in steps]}
      # A fresh copy: run.state's buffers are donated to the next dispatch.
      self.best_state = jax.jit(run.task.select_best, out_shardings=run.sharding)(
          better, run.state, run.state if self.best_state is None else self.best_state)
      state = self.best_state
    else:
      self.best = {"step": run.step, "metric": self.key, "value": float(vals[0])}
      state = run.state
    mgr = runs.manager(run.workdir, best=True, create=True)
    checkpoint.save_and_wait(mgr, run.step, state, force=True)   # before the next dispatch
    # donates the state's buffers
    mgr.close()
    if run.log:
      with open(os.path.join(run.workdir, runs.BEST_JSON), "w") as f:
        json.dump(self.best, f)

  def end(self, run):
    if self.best:
      run.summary["best"] = self.best
    if run.stop == "early_stopped":
      run.summary.update(early_stopped_at=run.step, restored_best_step=self.best["step"])
      run.state = runs.restore(run.workdir, run.task, run.config.seed, best=True,
                               step=self.best["step"], sharding=run.sharding)


def profile_range(t) -> tuple | None:
  """(a, b) from train.profile_steps "a,b" (None when empty); ConfigError when malformed."""
  spec = str(t.get("profile_steps", "") or "").strip()
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

  def _maybe_start(self, run):
    a, b = self.range
    if not self.tracing and run.step < a <= run.step + self.every and run.step < b:
      jax.profiler.start_trace(self.dir)
      self.tracing = True

  def start(self, run):
    if self.range:
      self._maybe_start(run)

  def __call__(self, run):
    if self.tracing and run.step >= self.range[1]:
      self.end(run)
    elif self.range:
      self._maybe_start(run)

  def end(self, run):
    if self.tracing:
      jax.block_until_ready(run.state)
      jax.profiler.stop_trace()
      self.tracing = False
      tqdm.write(f"profile of steps {self.range[0]}..{run.step} written to {self.dir} "
                 f"(tensorboard --logdir {self.dir})")


def default_hooks(run, writer, verbose: bool, on_dispatch=None) -> list:
  return [Profile(run), Metrics(run, writer, verbose, on_dispatch), Checkpoint(run),
          Grid(run, writer), Evaluate(run, writer)]

