"""The one training loop. Every task (GAN, classifier, music, ...) runs through `train`:

    run = Run(config, workdir)          # validate, place data, init or resume
    while run.step < run.total:         # dispatch k fused steps, then the hooks that are due
      run.dispatch(); fire(hooks)

The loop knows nothing of any model or of populations and fine-tuning (those are tasks):
it asks the task for data, an initial state and a pure step, and owns the rest: config,
workdir and checkpoint checks before anything compiles; the dataset on device whole
(batches drawn inside the compiled step); `train.steps_per_dispatch` steps fused with
`lax.scan`, jitted with the state donated and compiled ahead of time; Orbax checkpoints
and bit-exact resume; Ctrl-C / SIGTERM save and stop. Periodic work is in artjax.hooks.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import time

import jax
import jax.numpy as jnp
from tqdm.auto import tqdm

from artjax import ConfigError, checkpoint, hooks as hooks_lib, parallel, runs
from artjax.tasks import build_task
from artjax.writers import MetricWriter

_EVENTS = ("log_every", "ckpt_every", "sample_every", "eval_every")


def check_train_config(c) -> None:
  t = c.train
  if t.steps <= 0:
    raise ConfigError(f"train.steps must be > 0, got {t.steps}")
  if t.steps_per_dispatch <= 0:
    raise ConfigError(f"train.steps_per_dispatch must be > 0, got {t.steps_per_dispatch}")
  if t.patience and not t.eval_every:
    raise ConfigError("train.patience (early stopping) needs train.eval_every > 0")
  for k in _EVENTS:
    v = t[k]
    if v < 0:
      raise ConfigError(f"train.{k} must be >= 0, got {v}")
    if v and v % t.steps_per_dispatch:
      raise ConfigError(f"train.{k}={v} must be a multiple of train.steps_per_dispatch="
                        f"{t.steps_per_dispatch} (events happen between fused dispatches)")
  if t.keep < 1:
    raise ConfigError(f"train.keep must be >= 1, got {t.keep}")


def check_workdir(workdir: str) -> None:
  if not workdir:
    raise ConfigError("--workdir is required")
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_probe_{os.getpid()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise ConfigError(f"workdir {workdir!r} is not writable: {e.strerror or e}") from e


def _multi_step(step, num_steps: int, state, data):
  def body(s, _):
    return step(s, data)
  state, metrics = jax.lax.scan(body, state, None, length=num_steps)
  return state, jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)


def compile_multi_step(step, num_steps: int, state, data, mesh):
  """jit(scan of `num_steps` calls of `step`), state donated, compiled ahead of time.

  Returns (compiled, compile_seconds); the compiled object has cost_analysis() and
  memory_analysis()."""
  rep = parallel.replicated(mesh)
  fn = jax.jit(functools.partial(_multi_step, step, num_steps), donate_argnums=0,
               out_shardings=(rep, rep))
  with parallel.active_mesh(mesh):
    t = time.perf_counter()
    compiled = fn.lower(state, data).compile()
    return compiled, time.perf_counter() - t


def ensure_trained(config, workdir: str) -> None:
  """Trains `config` in `workdir` unless it holds a finished run (its final step)."""
  if checkpoint.latest_step(workdir) != config.train.steps:
    print(f"training {config.task} on {config.data.name} once (cached in {workdir})", flush=True)
    train(config, workdir, quiet=True)


def ensure_requirements(task, evaluating: bool) -> None:
  for config, workdir in task.requirements(evaluating):
    ensure_trained(config, workdir)


class Run:
  """A prepared run: validated, data on device, state initialised, warm-started or restored."""

  def __init__(self, config, workdir: str):
    self.config, self.workdir = config, workdir
    self.log = jax.process_index() == 0    # only process 0 writes files
    check_train_config(config)
    self.task = task = build_task(config)  # validates the task's config
    self.mesh = parallel.make_mesh(config.mesh.num_devices)
    parallel.check_batch(config.train.batch_size, self.mesh)
    check_workdir(workdir)
    self.sharding = parallel.replicated(self.mesh)
    self.start_step = runs.latest_step(workdir)
    abstract = runs.abstract_state(task, config.seed, self.sharding)
    pretrained = self._pretrained(abstract)
    self.ckpt = checkpoint.manager(workdir, keep=config.train.keep)
    if self.start_step is not None:
      checkpoint.check_compatible(self.ckpt, self.start_step, abstract)
    ensure_requirements(task, bool(config.train.eval_every))
    self.data = parallel.place_data(task.device_data(), self.mesh)   # may raise ConfigError
    with parallel.active_mesh(self.mesh):
      if self.start_step is not None:
        self.state = checkpoint.restore(self.ckpt, self.start_step, abstract)
      else:
        self.state = jax.jit(task.init_state, static_argnums=0,
                             out_shardings=self.sharding)(config.seed)
        if pretrained is not None:   # fine-tuning: pretrained weights, fresh optimizer state
          self.state = jax.jit(task.from_pretrained, out_shardings=self.sharding)(
              self.state, parallel.replicate(pretrained, self.mesh))
    self.step, self.total = int(self.start_step or 0), config.train.steps
    self.steps_done, self.compile_seconds, self._compiled = 0, 0.0, {}
    self.metrics, self.last_eval, self.summary = {}, {}, {}
    self.device_metrics, self.stop, self.interrupted = None, None, False
    self.t0 = time.perf_counter()

  def _pretrained(self, abstract):
    """A warm start's weights (shape-checked against the task), for a fresh run only."""
    source = self.task.warm_start()
    if self.start_step is not None or not source:
      return None
    _, pretrained = runs.open_run(source)
    jax.eval_shape(self.task.from_pretrained, abstract, pretrained)   # ConfigError if unfit
    return pretrained

  def elapsed(self) -> float:
    return time.perf_counter() - self.t0

  def step_fn(self, num_steps: int):
    """AOT-compiled fused step for `num_steps` steps (cached per length)."""
    if num_steps not in self._compiled:
      self._compiled[num_steps], self.compile_seconds = compile_multi_step(
          self.task.train_step, num_steps, self.state, self.data, self.mesh)
    return self._compiled[num_steps]

  def dispatch(self) -> None:
    """min(steps_per_dispatch, steps left) fused steps; metrics stay on device."""
    n = min(self.config.train.steps_per_dispatch, self.total - self.step)
    fn = self.step_fn(n)
    with parallel.active_mesh(self.mesh):
      self.state, self.device_metrics = fn(self.state, self.data)
    self.step += n
    self.steps_done += n

  def save(self, force: bool = False) -> None:
    checkpoint.save(self.ckpt, self.step, self.state, force=force)

  def save_final(self) -> None:
    """The final (or interrupted) step, unless already saved."""
    if self.step and self.ckpt.latest_step() != self.step:
      try:
        self.save(force=True)
      except Exception as e:  # state lost mid-dispatch (donated buffers): keep the last one
        print(f"could not save step {self.step} ({e}); the latest checkpoint is step "
              f"{self.ckpt.latest_step()}", flush=True)
        self.step = self.ckpt.latest_step() or 0
    self.ckpt.wait_until_finished()


@contextlib.contextmanager
def _sigterm_as_interrupt():
  """Preemption (SIGTERM) behaves like Ctrl-C: save a checkpoint and stop."""
  def handler(signum, frame):
    raise KeyboardInterrupt
  prev = signal.getsignal(signal.SIGTERM)
  installed = False
  if jax.process_count() == 1:
    try:
      signal.signal(signal.SIGTERM, handler)
      installed = True
    except ValueError:   # not the main thread
      pass
  try:
    yield
  finally:
    if installed:
      signal.signal(signal.SIGTERM, prev)


def _announce(run) -> None:
  mode = f"resuming from step {run.step}" if run.step else "starting"
  print(f"artjax: {run.task.describe()}; {len(jax.devices())} device(s), mesh "
        f"{dict(run.mesh.shape)}; {mode} -> {run.total} steps", flush=True)


def _report_compile(run) -> None:
  mem = run.step_fn(run.config.train.steps_per_dispatch).memory_analysis()
  if mem is not None:
    tqdm.write(f"compiled {run.config.train.steps_per_dispatch}-step dispatch in "
               f"{run.compile_seconds:.2f}s; temp memory {mem.temp_size_in_bytes / 2**20:.1f} MiB")


def train(config, workdir: str, *, on_dispatch=None, quiet: bool = False) -> dict:
  """Trains (or resumes) the task in `config` in `workdir`; returns the final summary.

  `on_dispatch(step, metrics)` is called on the host after each fused dispatch's
  metrics arrive (one dispatch behind); raising KeyboardInterrupt there (or Ctrl-C)
  saves a checkpoint at the current step and stops.
  """
  parallel.initialize_distributed(config)
  run = Run(config, workdir)
  verbose = run.log and not quiet
  writer = MetricWriter(workdir, enabled=run.log)
  if run.log:
    runs.write_config(workdir, config)
  if verbose:
    _announce(run)
  hooks = hooks_lib.default_hooks(run, writer, verbose, on_dispatch)
  with _sigterm_as_interrupt():
    try:
      for h in hooks:
        h.start(run)
      while run.step < run.total and run.stop is None:
        run.dispatch()
        if run.steps_done == run.config.train.steps_per_dispatch and verbose:
          _report_compile(run)
        for h in hooks:
          if h.due(run):
            h(run)
    except KeyboardInterrupt:
      run.interrupted = True
    for h in hooks:
      h.end(run)
  run.save_final()
  summary = _summary(run)
  if run.log:
    with open(os.path.join(workdir, "summary.json"), "w") as f:
      json.dump(summary, f, indent=2)
  if verbose:
    print(("interrupted: checkpoint saved at " if run.interrupted else "done: ") +
          " ".join(f"{k}={v}" for k, v in summary.items()) + f" workdir={workdir}", flush=True)
  writer.close()
  run.ckpt.close()
  return summary


def _summary(run) -> dict:
  wall = run.elapsed()
  return {"step": run.step, "steps_this_run": run.steps_done, "wall_s": round(wall, 2),
          "steps_per_s": round(run.steps_done / max(wall, 1e-9), 2),
          "interrupted": run.interrupted,
          **{k: round(v, 4) for k, v in run.metrics.items()},
          **{f"eval/{k}": round(v, 4) for k, v in run.last_eval.items()}, **run.summary}
