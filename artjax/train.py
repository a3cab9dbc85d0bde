"""The one training loop. Every task (GAN, music, style transfer) runs through `train`.

The loop knows nothing of any model: it asks the task for data, an initial state and
a pure step, and owns everything else:

* validation of config, workdir and checkpoint compatibility before anything compiles;
* the dataset placed on device whole (replicated over the mesh); batches are drawn
  inside the compiled step;
* `train.steps_per_dispatch` steps fused per dispatch with `lax.scan`, jitted with the
  state donated, compiled ahead of time (memory stats printed);
* metrics read back one dispatch behind so the host never stalls the device;
* Orbax checkpoints every `train.ckpt_every` steps, at the end, and on Ctrl-C; rerunning
  on the same workdir resumes bit-exactly;
* config.json, metrics.jsonl, TensorBoard scalars and sample grids, PNG grids.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from artjax import ConfigError, checkpoint, parallel, population
from artjax.tasks import build_task
from artjax.writers import MetricWriter, image_grid


def _read_json(path):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _scalars(tree) -> dict:
  """{name: float}; per-replica vectors become name/r0, name/r1, ... plus their mean."""
  out = {}
  for k, v in tree.items():
    v = np.asarray(v)
    if v.ndim == 0:
      out[k] = float(v)
    else:
      out[k] = float(v.mean())
      out.update({f"{k}/r{i}": float(x) for i, x in enumerate(v)})
  return out


@jax.jit
def select_replicas(mask, new, old):
  """Per replica r: `new` where mask[r], else `old` (pytrees stacked over replicas)."""
  return jax.tree.map(lambda a, b: jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
                      new, old)


def check_train_config(c) -> None:
  t = c.train
  if t.steps <= 0:
    raise ConfigError(f"train.steps must be > 0, got {t.steps}")
  if t.steps_per_dispatch <= 0:
    raise ConfigError(f"train.steps_per_dispatch must be > 0, got {t.steps_per_dispatch}")
  if t.get("patience", 0) and not t.get("eval_every", 0):
    raise ConfigError("train.patience (early stopping) needs train.eval_every > 0")
  for k in ("log_every", "ckpt_every", "sample_every", "eval_every"):
    v = t.get(k, 0)
    if v < 0:
      raise ConfigError(f"train.{k} must be >= 0, got {v}")
    if v and v % t.steps_per_dispatch:
      raise ConfigError(f"train.{k}={v} must be a multiple of train.steps_per_dispatch="
                        f"{t.steps_per_dispatch} (events happen between fused dispatches)")
  if t.get("keep", 1) < 1:
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


class Run:
  """A prepared run: validated, data on device, state initialised or restored."""

  def __init__(self, config, workdir: str):
    self.config = config
    self.workdir = workdir
    self.log = jax.process_index() == 0    # only process 0 writes files
    check_train_config(config)
    self.task = build_task(config)                       # validates the task's config
    population.hparams(config)                           # validates population lists
    self.init = population.init_fn(self.task, config)
    self.step = population.step_fn(self.task, config)
    self.replicas = population.num_replicas(config)
    self.mesh = parallel.make_mesh(config.get("mesh", {}).get("num_devices", 0))
    parallel.check_batch(config.train.batch_size, self.mesh)
    check_workdir(workdir)
    self.abstract_state = jax.eval_shape(self.init, config.seed)
    self.start_step = checkpoint.latest_step(workdir)
    pretrained = None
    init_from = config.get("finetune", {}).get("init_from", "") if config.get("finetune") else ""
    if self.start_step is None and init_from:
      from artjax.sample import load_state
      _, pretrained = load_state(init_from)
      self.from_pretrained = (jax.vmap(self.task.from_pretrained, in_axes=(0, None))
                              if self.replicas > 1 else self.task.from_pretrained)
      jax.eval_shape(self.from_pretrained, self.abstract_state, pretrained)  # shape check
    self.ckpt = checkpoint.manager(workdir, keep=config.train.get("keep", 3))
    if self.start_step is not None:
      checkpoint.check_compatible(self.ckpt, self.start_step, self.abstract_state)
    host_data = self.task.device_data()                  # may raise ConfigError (missing data)
    self.rep = parallel.replicated(self.mesh)
    self.data = parallel.place_data(host_data, self.mesh)
    with parallel.active_mesh(self.mesh):
      if self.start_step is not None:
        target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=self.rep),
                              self.abstract_state)
        self.state = checkpoint.restore(self.ckpt, self.start_step, target)
      else:
        self.state = jax.jit(self.init, static_argnums=0, out_shardings=self.rep)(config.seed)
        if pretrained is not None:   # fine-tuning: pretrained weights, fresh optimizer state
          self.state = jax.jit(self.from_pretrained, out_shardings=self.rep)(
              self.state, parallel.replicate(pretrained, self.mesh))
    self._compiled = {}
    self.best_state = None   # populations: each replica's best state so far (eval_every)

  def step_fn(self, num_steps: int):
    """AOT-compiled fused step for `num_steps` steps (cached per length)."""
    if num_steps not in self._compiled:
      self._compiled[num_steps], self.compile_seconds = compile_multi_step(
          self.step, num_steps, self.state, self.data, self.mesh)
    return self._compiled[num_steps]

  def save(self, step: int, force=False):
    checkpoint.save(self.ckpt, step, self.state, force=force)


def train(config, workdir: str, *, on_dispatch=None, quiet: bool = False) -> dict:
  """Trains (or resumes) the task in `config` in `workdir`; returns the final summary.

  `on_dispatch(step, metrics)` is called on the host after each fused dispatch's
  metrics arrive (one dispatch behind); raising KeyboardInterrupt there (or Ctrl-C)
  saves a checkpoint at the current step and stops.
  """
  parallel.initialize_distributed(config)
  run = Run(config, workdir)
  verbose = run.log and not quiet
  c = config.train
  task = run.task
  writer = MetricWriter(workdir, enabled=run.log)
  if run.log:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2, sort_keys=True))
  total = c.steps
  step = int(run.start_step or 0)
  k = c.steps_per_dispatch
  describe = getattr(task, "describe", lambda: type(task).__name__)()
  if verbose:
    mode = f"resuming from step {step}" if step else "starting"
    print(f"artjax: {describe}; {len(jax.devices())} device(s), mesh {dict(run.mesh.shape)}; "
          f"{mode} -> {total} steps", flush=True)
  grid_fn = (jax.jit(population.map_fn(task.summary_images, config))
             if c.get("sample_every", 0) else None)
  eval_fn = (jax.jit(population.map_fn(task.evaluate, config))
             if c.get("eval_every", 0) else None)
  best = _read_json(os.path.join(workdir, "best.json")) or {}
  if best and run.replicas > 1 and run.start_step is not None:   # resuming a population
    best_mgr = checkpoint.manager(os.path.join(workdir, "best"), keep=1, create=False)
    run.best_state = checkpoint.restore(best_mgr, best["step"], jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=run.rep), run.abstract_state))
    best_mgr.close()

  def run_eval(at_step):
    nonlocal best
    with parallel.active_mesh(run.mesh):
      m = _scalars(parallel.to_host(eval_fn(run.state, run.data)))
    writer.scalars(at_step, {f"eval/{k_}": v for k_, v in m.items()})
    key = task.eval_key
    improved = None
    if key and key in m and run.replicas == 1 and (not best or m[key] < best["value"]):
      best = {"step": at_step, "metric": key, "value": m[key]}
      improved = run.state
    elif key and key in m and run.replicas > 1:
      # Per-replica best: each replica keeps its own best state (selected on device).
      vals = np.asarray([m[f"{key}/r{r}"] for r in range(run.replicas)])
      prev = np.asarray(best.get("values", [np.inf] * run.replicas))
      better = vals < prev
      if better.any():
        steps = np.where(better, at_step, best.get("replica_steps", [at_step] * run.replicas))
        vals = np.where(better, vals, prev)
        best = {"step": at_step, "metric": key, "value": float(vals.min()),
                "values": vals.tolist(), "replica_steps": [int(x) for x in steps]}
        # A fresh copy: run.state's buffers are donated to the next dispatch.
        run.best_state = select_replicas(jnp.asarray(better), run.state,
                                         run.state if run.best_state is None else run.best_state)
        improved = run.best_state
    if improved is not None:
      best_mgr = checkpoint.manager(os.path.join(workdir, "best"), keep=1)
      checkpoint.save(best_mgr, at_step, improved, force=True)
      best_mgr.wait_until_finished()
      best_mgr.close()
      if run.log:
        with open(os.path.join(workdir, "best.json"), "w") as f:
          json.dump(best, f)
    return m
  if grid_fn and run.log:
    os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)

  def log_grid(at_step):
    if grid_fn is None:
      return
    with parallel.active_mesh(run.mesh):
      imgs = parallel.to_host(grid_fn(run.state))
    per_replica = imgs if run.replicas > 1 else imgs[None]
    for r, im in enumerate(per_replica):
      suffix = f"_r{r}" if run.replicas > 1 else ""
      grid = image_grid(im, ncol=task.grid_columns(), scale=max(1, 64 // im.shape[1]))
      writer.image(at_step, "samples" + suffix.replace("_", "/"), grid,
                   os.path.join(workdir, "samples", f"step_{at_step:07d}{suffix}.png"))

  interrupted = False
  prev_sigterm = signal.getsignal(signal.SIGTERM)

  def on_sigterm(signum, frame):  # preemption: behave like Ctrl-C
    raise KeyboardInterrupt

  if jax.process_count() == 1:
    try:
      signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread
      pass
  t_start = time.perf_counter()
  steps_done = 0
  last_metrics: dict = {}
  last_eval: dict = {}
  early_stopped = None
  pending = None  # (step, device metrics) of the previous dispatch
  bar = tqdm(total=total, initial=step, disable=not verbose or total == step,
             unit="step", dynamic_ncols=True, mininterval=1.0)

  def drain(pending_item):
    nonlocal last_metrics
    at, m = pending_item
    m = _scalars(parallel.to_host(m))
    last_metrics = m
    if c.get("log_every", 0) and at % c.log_every == 0 or at == total:
      elapsed = time.perf_counter() - t_start
      writer.scalars(at, {**m, "steps_per_s": steps_done / max(elapsed, 1e-9)})
    bar.set_postfix({kk: f"{vv:.3f}" for kk, vv in list(m.items())[:4]}, refresh=False)
    if on_dispatch is not None:
      on_dispatch(at, m)

  try:
    if step == 0 and c.get("sample_every", 0):
      log_grid(0)
    while step < total:
      n = min(k, total - step)
      fn = run.step_fn(n)
      if n == k and steps_done == 0 and verbose:
        mem = fn.memory_analysis()
        if mem is not None:
          tqdm.write(f"compiled {k}-step dispatch in {run.compile_seconds:.2f}s; temp memory "
                     f"{getattr(mem, 'temp_size_in_bytes', 0) / 2**20:.1f} MiB")
      with parallel.active_mesh(run.mesh):
        run.state, metrics = fn(run.state, run.data)
      step += n
      steps_done += n
      bar.update(n)
      if pending is not None:
        drain(pending)
      pending = (step, metrics)
      if c.get("ckpt_every", 0) and step % c.ckpt_every == 0 and step < total:
        run.save(step)
      if c.get("sample_every", 0) and step % c.sample_every == 0:
        log_grid(step)
      if eval_fn is not None and (step % c.eval_every == 0 or step == total):
        last_eval = run_eval(step)
        patience = c.get("patience", 0)
        last_best = max(best.get("replica_steps", [best.get("step", step)])) if best else step
        if patience and best and (step - last_best) >= patience * c.eval_every:
          early_stopped = step
          break
    if pending is not None:
      drain(pending)
      pending = None
  except KeyboardInterrupt:
    interrupted = True
  finally:
    bar.close()
    try:
      signal.signal(signal.SIGTERM, prev_sigterm)
    except ValueError:
      pass
  if pending is not None and not interrupted:
    drain(pending)
  if early_stopped is not None:
    # Early stopping: the best checkpoint becomes the run's final state.
    best_mgr = checkpoint.manager(os.path.join(workdir, "best"), keep=1, create=False)
    target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=run.rep),
                          run.abstract_state)
    run.state = checkpoint.restore(best_mgr, best["step"], target)
    best_mgr.close()
  if step and run.ckpt.latest_step() != step:
    try:
      run.save(step, force=True)
    except Exception as e:  # state lost mid-dispatch (donated buffers): keep the last checkpoint
      print(f"could not save step {step} ({e}); the latest checkpoint is step "
            f"{run.ckpt.latest_step()}", flush=True)
      step = run.ckpt.latest_step() or 0
  run.ckpt.wait_until_finished()
  wall = time.perf_counter() - t_start
  summary = {"step": step, "steps_this_run": steps_done, "wall_s": round(wall, 2),
             "steps_per_s": round(steps_done / max(wall, 1e-9), 2), "interrupted": interrupted,
             **{kk: round(vv, 4) for kk, vv in last_metrics.items()},
             **{f"eval/{kk}": round(vv, 4) for kk, vv in last_eval.items()}}
  if best:
    summary["best"] = best
  if early_stopped is not None:
    summary["early_stopped_at"] = early_stopped
    summary["restored_best_step"] = best["step"]
  if run.log:
    if not interrupted and c.get("sample_every", 0) and step % c.sample_every:
      log_grid(step)
    with open(os.path.join(workdir, "summary.json"), "w") as f:
      json.dump(summary, f, indent=2)
  if verbose:
    print(("interrupted: checkpoint saved at " if interrupted else "done: ") +
          " ".join(f"{kk}={vv}" for kk, vv in summary.items()) + f" workdir={workdir}", flush=True)
  writer.close()
  run.ckpt.close()
  return summary
