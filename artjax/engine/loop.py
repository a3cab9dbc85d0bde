"""The one training loop. Every task (GAN, classifier, music, ...) runs through `train`:

    run = Run(task, workdir, open_source)   # validate, place data, init or resume
    while run.step < run.total:         # dispatch k fused steps, then the hooks that are due
      run.dispatch(); fire(hooks)

The loop knows nothing of any model or of populations and fine-tuning (those are tasks):
it asks the task for data, an initial state and a pure step, and owns the rest: config,
workdir and checkpoint checks before anything compiles; the dataset on device whole
(batches drawn inside the compiled step); `train.steps_per_dispatch` steps fused with
`lax.scan`, jitted with the state donated and compiled ahead of time; Orbax checkpoints
and bit-exact resume; Ctrl-C / SIGTERM save and stop. Periodic work is in artjax.engine.hooks.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import signal
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from artjax import ConfigError
from artjax.engine import checkpoint, hooks as hooks_lib, parallel, workdir as runs
from artjax.engine.writers import MetricWriter

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
  if t.on_nonfinite not in GUARDS:
    raise ConfigError(f"unknown train.on_nonfinite {t.on_nonfinite!r}; choose one of {GUARDS}")
  if t.max_skipped < 1:
    raise ConfigError(f"train.max_skipped must be >= 1, got {t.max_skipped}")
  hooks_lib.profile_range(t)   # ConfigError for a bad train.profile_steps


GUARDS = ("halt", "skip")


def all_finite(tree) -> jax.Array:
  """True when every floating leaf of `tree` is finite (a scalar bool)."""
  flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
           if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)


def _multi_step(step, num_steps: int, guard: str, state, data):
  """`num_steps` steps fused with lax.scan -> (state, mean metrics, guard report).

  guard "halt": the report's `finite` says whether the metrics of every step and the final
  state are finite (no per-step cost: a non-finite step makes the mean non-finite).
  guard "skip": a step whose metrics or new state are not finite is dropped inside the
  program (the state keeps its old values; only `step` and `rng` advance, so the next step
  draws a new batch); the report counts skipped steps and the longest run of them."""
  if guard == "skip":
    def body(carry, i):
      s, run, longest, lead = carry
      new, m = step(s, data)
      ok = all_finite(m) & all_finite(new)
      kept = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, s)
      kept.update({k: new[k] for k in ("step", "rng") if k in new})
      run = jnp.where(ok, 0, run + 1)
      lead = jnp.where((lead == i) & ~ok, lead + 1, lead)
      return (kept, run, jnp.maximum(longest, run), lead), (m, ok)
    zero = jnp.zeros((), jnp.int32)
    (state, trailing, longest, leading), (metrics, ok) = jax.lax.scan(
        body, (state, zero, zero, zero), jnp.arange(num_steps, dtype=jnp.int32))
    w = ok.astype(jnp.float32)
    mean = jax.tree.map(lambda m: jnp.sum(jnp.where(ok, m, 0.0), 0) / jnp.maximum(w.sum(), 1.0),
                        metrics)
    report = {"finite": all_finite(mean) & all_finite(state),
              "skipped": jnp.sum(~ok).astype(jnp.int32), "longest": longest,
              "leading": leading, "trailing": trailing}
    return state, mean, report

  def body(s, _):
    return step(s, data)
  state, metrics = jax.lax.scan(body, state, None, length=num_steps)
  mean = jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)
  return state, mean, {"finite": all_finite(mean) & all_finite(state)}


def compile_multi_step(step, num_steps: int, state, data, mesh, guard: str = "halt"):
  """jit(scan of `num_steps` calls of `step`) -> (state, metrics, guard report), the state
  donated, compiled ahead of time.

  Returns (compiled, compile_seconds); the compiled object has cost_analysis() and
  memory_analysis()."""
  rep = parallel.replicated(mesh)   # metrics; the state keeps its own layout
  fn = jax.jit(functools.partial(_multi_step, step, num_steps, guard), donate_argnums=0,
               out_shardings=(jax.tree.map(lambda a: a.sharding, state), rep, rep))
  with parallel.active_mesh(mesh):
    t = time.perf_counter()
    compiled = fn.lower(state, data).compile()
    return compiled, time.perf_counter() - t


def state_layout(task, mesh, seed: int):
  """(abstract state with its shardings, the shardings): the task's weights laid out by
  their logical axes (parallel.RULES) on `mesh`, everything else replicated."""
  abstract = jax.eval_shape(task.init_state, seed)
  sharding = parallel.state_shardings(abstract, task.param_axes(), mesh)
  return parallel.with_shardings(abstract, sharding), sharding


def initial_state(task, mesh, seed: int, sharding=None):
  """A fresh run state for `seed`, created on device in its layout (see `state_layout`)."""
  sharding = state_layout(task, mesh, seed)[1] if sharding is None else sharding
  with parallel.active_mesh(mesh):
    return jax.jit(task.init_state, static_argnums=0, out_shardings=sharding)(seed)


class Run:
  """A prepared run: validated, data on device, state initialised, warm-started or restored."""

  def __init__(self, task, workdir: str, open_source=None):
    """`task`: built from its config (task.config); `open_source(workdir) -> (task, state)`
    opens a warm start's run (the caller's: the engine knows no task registry)."""
    config = task.config
    self.config, self.workdir, self.open_source = config, workdir, open_source
    self.log = jax.process_index() == 0    # only process 0 writes files
    check_train_config(config)
    self.task = task
    self.mesh = parallel.mesh_of(config)
    parallel.check_batch(config.train.batch_size, self.mesh)
    created = runs.check_workdir(workdir)
    self.lock = runs.WorkdirLock(workdir) if self.log else None
    try:
      if self.lock:
        self.lock.acquire()
      self._prepare()
    except BaseException:
      if self.lock:
        self.lock.release()
      if created and not os.listdir(workdir):   # nothing written: no empty workdir left
        os.rmdir(workdir)
      raise
    self.step, self.total = int(self.start_step or 0), config.train.steps
    self.steps_done, self.compile_seconds, self._compiled = 0, 0.0, {}
    self.metrics, self.last_eval, self.summary = {}, {}, {}
    self.device_metrics = self.device_report = None
    self.stop, self.interrupted, self.halt = None, False, None
    self.skipped, self.last_dispatch, self.save_error = 0, 0, None
    self.failed_step = None
    self.t0 = time.perf_counter()

  def _prepare(self):
    """Restore (verified, newest intact step) or initialise / warm-start; data on device."""
    config, task = self.config, self.task
    self.param_axes = task.param_axes()
    abstract, self.sharding = state_layout(task, self.mesh, config.seed)
    self.start_step, restored = None, None
    if checkpoint.steps(self.workdir):
      with parallel.active_mesh(self.mesh):
        self.start_step, restored = checkpoint.restore_verified(self.workdir, abstract)
    pretrained = self._pretrained(abstract)
    self.data = parallel.place_data(task.device_data(), self.mesh)   # may raise ConfigError
    self.ckpt = checkpoint.manager(self.workdir, keep=config.train.keep)
    if restored is not None:
      self.state = restored
      return
    self.state = initial_state(task, self.mesh, config.seed, self.sharding)
    with parallel.active_mesh(self.mesh):
      if pretrained is not None:   # fine-tuning: pretrained weights, fresh optimizer state
        self.state = jax.jit(task.from_pretrained, out_shardings=self.sharding)(
            self.state, parallel.replicate(pretrained, self.mesh))

  def _pretrained(self, abstract):
    """A warm start's weights (shape-checked against the task), for a fresh run only."""
    source = self.task.warm_start()
    if self.start_step is not None or not source:
      return None
    source_config = runs.load_config(source)
    if source_config.task != self.config.task:
      other = source_config.task
      raise ConfigError(f"--init_from={source!r} is a {other} run; fine-tuning a "
                        f"{self.config.task} model needs a {self.config.task} run")
    _, pretrained = self.open_source(source)
    jax.eval_shape(self.task.from_pretrained, abstract, pretrained)   # ConfigError if unfit
    return pretrained

  def elapsed(self) -> float:
    return time.perf_counter() - self.t0

  def step_fn(self, num_steps: int):
    """AOT-compiled fused step for `num_steps` steps (cached per length)."""
    if num_steps not in self._compiled:
      self._compiled[num_steps], self.compile_seconds = compile_multi_step(
          self.task.train_step, num_steps, self.state, self.data, self.mesh,
          self.config.train.on_nonfinite)
    return self._compiled[num_steps]

  def dispatch(self, check=None) -> None:
    """min(steps_per_dispatch, steps left) fused steps; metrics stay on device. `check()`,
    called between the compile and the call, may raise KeyboardInterrupt to stop first."""
    n = min(self.config.train.steps_per_dispatch, self.total - self.step)
    fn = self.step_fn(n)   # compiled outside the deferral: Ctrl-C during a compile is immediate
    if check is not None:
      check()
    # The call donates the state's buffers: a signal between the call and the assignment would
    # leave self.state deleted (nothing to save). The call and the new state change together.
    with signals_deferred(), parallel.active_mesh(self.mesh):
      out = fn(self.state, self.data)
      self.state, self.device_metrics, self.device_report = out
      self.step += n
      self.steps_done += n
      self.last_dispatch = n

  def info(self) -> hooks_lib.StepInfo:
    return hooks_lib.StepInfo(
        step=self.step, total=self.total, state=self.state, data=self.data,
        device_metrics=self.device_metrics, device_report=self.device_report,
        last_dispatch=self.last_dispatch, steps_done=self.steps_done, elapsed=self.elapsed(),
        interrupted=self.interrupted)

  def apply(self, out: hooks_lib.Outcome | None) -> None:
    """Records what a hook returned: the one place the run's state changes after a dispatch."""
    if out is None:
      return
    if out.metrics is not None:
      self.metrics = out.metrics
    if out.eval is not None:
      self.last_eval = out.eval
    self.skipped += out.skipped
    if out.nonfinite is not None:
      self.note_nonfinite(*out.nonfinite)
    if out.best is not None:
      self.save_best(out.best, out.best_state)
    if out.save:
      self.save()
    if out.stop is not None and self.stop is None:
      self.stop = out.stop
    if out.summary:
      self.summary.update(out.summary)
    if out.state is not None:
      self.state = out.state

  def save_best(self, best: dict, state) -> None:
    """best/ holds `state` (saved before the next dispatch donates its buffers); best.json."""
    mgr = runs.manager(self.workdir, best=True, create=True)
    checkpoint.save_and_wait(mgr, self.step, state, force=True)
    mgr.close()
    if self.log:
      with open(os.path.join(self.workdir, runs.BEST_JSON), "w") as f:
        json.dump(best, f)

  def state_finite(self) -> bool:
    """Whether the latest dispatch's metrics and state were finite (waits for it)."""
    return self.device_report is None or bool(jax.device_get(self.device_report["finite"]))

  def note_nonfinite(self, first: int, last: int, host_metrics: dict | None = None) -> None:
    """Stops the run: steps first..last produced a non-finite value (named in the message)."""
    if self.halt is not None:
      return
    m = host_metrics if host_metrics is not None else hooks_lib.scalars(
        parallel.to_host(self.device_metrics))
    bad = [k for k, v in m.items() if not math.isfinite(v)]
    if not bad:
      leaves = jax.tree_util.tree_flatten_with_path(parallel.to_host(self.state))[0]
      bad = [f"state {jax.tree_util.keystr(p)}" for p, x in leaves
             if np.issubdtype(np.asarray(x).dtype, np.inexact) and not np.all(np.isfinite(x))][:1]
    self.halt = {"first_step": first, "last_step": last, "quantities": bad[:4]}
    self.stop = "nonfinite"

  def save(self, force: bool = False) -> bool:
    """Saves the current step, waiting until it is on disk, with Ctrl-C/SIGTERM deferred until
    then. Never saves a non-finite state. False (and the run stops) when nothing was saved."""
    if self.stop == "nonfinite":
      return False
    if not self.state_finite():
      self.note_nonfinite(self.step - self.last_dispatch + 1, self.step)
      return False
    with signals_deferred():
      try:
        checkpoint.save_and_wait(self.ckpt, self.step, self.state, force=force)
      except Exception as e:   # read-only disk, full disk, donated buffers after Ctrl-C, ...
        self.save_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        self.failed_step = self.step
        if not self.interrupted:
          self.stop = "save_failed"
        return False
    return True

  def save_final(self) -> None:
    """The final (or interrupted) step, unless already saved or not finite."""
    try:
      if self.step and self.ckpt.latest_step() != self.step and not self.save(force=True):
        self.step = self.ckpt.latest_step() or 0
    except KeyboardInterrupt:   # a signal deferred during the save: the save is complete
      self.interrupted = True
    self.ckpt.wait_until_finished()

  @property
  def status(self) -> str:
    if self.stop in ("nonfinite", "save_failed"):
      return self.stop
    if self.interrupted:
      return "interrupted"
    return self.stop or "finished"


@contextlib.contextmanager
def signals_deferred():
  """Ctrl-C / SIGTERM that arrive inside the block take effect (KeyboardInterrupt) after it,
  so a checkpoint being written is never left half-written by a signal."""
  got = []
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  prev = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
  for sig in prev:
    signal.signal(sig, lambda signum, frame: got.append(signum))
  try:
    yield
  finally:
    for sig, handler in prev.items():
      signal.signal(sig, handler)
  if got:
    raise KeyboardInterrupt


class _Preemption:
  """SIGTERM (preemption) over the whole of `train`: inside the step loop it interrupts like
  Ctrl-C; while the run opens (restore, data, hooks) and while it closes (final save, summary)
  it is noted and acted on at the next safe point, so a run that has started always ends with
  its checkpoint and a documented status, never half-way through opening or closing."""

  def __init__(self):
    self.live = self.pending = self.installed = False
    self.outcome = None      # the run's final status once reported (see __exit__)

  def _handler(self, signum, frame):
    # Python runs a handler between any two bytecodes, also inside a gc or weakref callback
    # (XLA's `_xla_gc_callback`), where a raised exception is printed and dropped: the flag,
    # checked before every dispatch, is what makes the interrupt certain; the raise makes it
    # prompt (a long compile is left at once)
    self.pending = True
    if self.live:
      raise KeyboardInterrupt

  def check(self) -> None:
    """Raises KeyboardInterrupt if a SIGTERM has arrived (called at the loop's safe points)."""
    if self.pending and self.installed:
      raise KeyboardInterrupt

  def __enter__(self):
    self.prev = signal.getsignal(signal.SIGTERM)
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      signal.signal(signal.SIGTERM, self._handler)
      self.installed = True
      _tell(self.prev, None)          # a run under way has no outcome yet
    return self

  def __exit__(self, *exc):
    """Gives SIGTERM back to whoever had it, telling it the run's exit status when it keeps
    outcomes (the CLI's handler, run.py): a late SIGTERM then keeps a finished run's status.
    A nested run (the evaluator trained inside a run) or a sweep's cell tells its enclosing
    handler nothing: their outcome is not the process's."""
    if self.installed:
      if self.outcome is not None:     # told first: no moment where the handler is back
        _tell(self.prev, EXIT_CODES[self.outcome])   # but knows nothing yet
      signal.signal(signal.SIGTERM, self.prev)

  @contextlib.contextmanager
  def interrupting(self):
    """The step loop: a SIGTERM noted before it, or arriving in it, is a KeyboardInterrupt."""
    self.live = True
    try:
      self.check()
      yield
    finally:
      self.live = False


def _tell(handler, exit_code) -> None:
  """A SIGTERM handler that keeps outcomes has `keep_outcome(exit_code or None)`."""
  keep = getattr(handler, "keep_outcome", None)
  if callable(keep):
    keep(exit_code)


def _announce(run) -> None:
  mode = f"resuming from step {run.step}" if run.step else "starting"
  print(f"artjax: {run.task.describe()}; {len(jax.devices())} device(s), mesh "
        f"{dict(run.mesh.shape)}; {mode} -> {run.total} steps", flush=True)


def _report_compile(run) -> None:
  mem = run.step_fn(run.config.train.steps_per_dispatch).memory_analysis()
  if mem is not None:
    tqdm.write(f"compiled {run.config.train.steps_per_dispatch}-step dispatch in "
               f"{run.compile_seconds:.2f}s; temp memory {mem.temp_size_in_bytes / 2**20:.1f} MiB")


def train(task, workdir: str, *, open_source=None, on_dispatch=None, quiet: bool = False) -> dict:
  """Trains (or resumes) `task` (built from task.config) in `workdir`; returns the final
  summary. `open_source(workdir) -> (task, state)`: how a warm start's run is opened.

  `on_dispatch(step, metrics)` is called on the host after each fused dispatch's
  metrics arrive (one dispatch behind); raising KeyboardInterrupt there (or Ctrl-C)
  saves a checkpoint at the current step and stops.
  """
  with _Preemption() as preemption:
    run = Run(task, workdir, open_source)
    try:
      return _train(run, preemption, on_dispatch, quiet)
    finally:
      if run.lock:
        run.lock.release()


def _train(run, preemption, on_dispatch, quiet) -> dict:
  config, workdir = run.config, run.workdir
  verbose = run.log and not quiet
  writer = MetricWriter(workdir, enabled=run.log, resume_step=run.start_step)
  if run.log:
    runs.write_config(workdir, config, resumed_at=run.start_step)
  if verbose:
    _announce(run)
  hooks = hooks_lib.default_hooks(run, writer, verbose, on_dispatch)
  try:
    with preemption.interrupting():
      for h in hooks:
        run.apply(h.start(run.info()))
      while run.step < run.total and run.stop is None:
        preemption.check()
        run.dispatch(preemption.check)
        if run.steps_done == run.config.train.steps_per_dispatch and verbose:
          _report_compile(run)
        for h in hooks:
          info = run.info()
          if h.due(info):
            run.apply(h(info))
  except KeyboardInterrupt:
    run.interrupted = True
  for h in hooks:
    run.apply(h.end(run.info()))
  run.save_final()
  summary = _summary(run)
  if run.log:
    with open(os.path.join(workdir, "summary.json"), "w") as f:
      json.dump(summary, f, indent=2)
  _report_end(run, summary, verbose)
  preemption.outcome = run.status
  writer.close()
  run.ckpt.close()
  return summary


#: `run.py train` exit codes by the run's final status (documented in docs/robustness.md)
EXIT_CODES = {"finished": 0, "early_stopped": 0, "interrupted": 3, "nonfinite": 4,
              "save_failed": 5}


def _finite_or_none(v):
  return round(v, 4) if math.isfinite(v) else None


def _layout(run) -> dict:
  """The mesh and what one device holds: the model weights, the optimizer state, all state."""
  st = run.state
  weights = {k: st[k] for k in run.param_axes if k in st}
  opt = {k: st[k] for k in run.task.opt_keys if k in st}
  return {"mesh": {k: int(v) for k, v in run.mesh.shape.items()},
          "param_bytes_per_device": parallel.bytes_per_device(weights),
          "opt_bytes_per_device": parallel.bytes_per_device(opt),
          "state_bytes_per_device": parallel.bytes_per_device(st)}


def _summary(run) -> dict:
  wall = run.elapsed()
  out = {"step": run.step, "status": run.status, "steps_this_run": run.steps_done,
         "wall_s": round(wall, 2), "steps_per_s": round(run.steps_done / max(wall, 1e-9), 2),
         "interrupted": run.interrupted,
         **{k: _finite_or_none(v) for k, v in run.metrics.items()},
         **{f"eval/{k}": _finite_or_none(v) for k, v in run.last_eval.items()}, **run.summary}
  out.update(_layout(run))
  if run.halt is not None:
    out["nonfinite"] = run.halt
  if run.skipped:
    out["skipped_steps"] = run.skipped
  if run.save_error:
    out["save_error"] = run.save_error
  return out


def _report_end(run, summary, verbose) -> None:
  """The final line: `done:`, `interrupted:`, or an `error:` line on stderr."""
  last = run.ckpt.latest_step()
  if run.status == "nonfinite":
    h = run.halt
    kept = (f"the last good checkpoint, step {last}, is kept" if last is not None
            else "no checkpoint was saved")
    print(f"error: non-finite {', '.join(h['quantities']) or 'values'} in steps "
          f"{h['first_step']}..{h['last_step']}: training halted, {kept} (lower optim.lr, or "
          f"set train.on_nonfinite=skip)", file=sys.stderr, flush=True)
  elif run.status == "save_failed":
    print(f"error: could not save step {run.failed_step} ({run.save_error}); the last good "
          f"checkpoint is step {last}", file=sys.stderr, flush=True)
  elif verbose:
    head = (f"interrupted: checkpoint saved at step {run.step}, resume by rerunning; "
            if run.interrupted else "done: ")
    if run.interrupted and last is None and not run.step:
      head = "interrupted: stopped before the first step (nothing to save), rerun to start; "
    if run.interrupted and run.save_error:
      head = f"interrupted: could not save ({run.save_error}); resume from step {last}; "
    print(head + " ".join(f"{k}={v}" for k, v in summary.items()) + f" workdir={run.workdir}",
          flush=True)
