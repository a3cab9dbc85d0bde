"""Sampling from a trained workdir (the latest checkpoint)."""

from __future__ import annotations

import json
import os

import jax
import ml_collections

from artjax import ConfigError, checkpoint, population
from artjax.tasks import build_task


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise ConfigError(f"no config.json in workdir {workdir!r}: train a model there first")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load_state(workdir: str, step: int | None = None, subdir: str = "", replica: int | None = None):
  """(task, state) from the workdir's config and its latest (or given) checkpoint.

  `subdir="best"` reads the best-by-eval checkpoint kept beside the latest."""
  config = load_config(workdir)
  task = build_task(config)
  mgr = checkpoint.manager(os.path.join(workdir, subdir) if subdir else workdir, create=False)
  step = mgr.latest_step() if step is None else step
  if step is None:
    raise ConfigError(f"no checkpoint in workdir {workdir!r}")
  abstract = jax.eval_shape(population.init_fn(task, config), config.seed)
  checkpoint.check_compatible(mgr, step, abstract)
  one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=one), abstract)
  state = checkpoint.restore(mgr, step, target)
  mgr.close()
  r = population.num_replicas(config)
  if r > 1:
    if replica is None:
      raise ConfigError(f"{workdir!r} holds a population of {r} replicas: pass --replica=0..{r - 1}")
    if not 0 <= replica < r:
      raise ConfigError(f"--replica={replica} is out of range 0..{r - 1}")
    state = population.replica(state, replica)
  return task, state


def sample_to_file(workdir: str, num: int, out: str, *, seed: int = 0, grid: str | None = None,
                   replica: int | None = None, prime: str | None = None,
                   overrides: dict | None = None):
  if num <= 0:
    raise ConfigError(f"--num must be > 0, got {num}")
  task, state = load_state(workdir, replica=replica)
  opening = None
  overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
  if prime or overrides:
    if "sample" not in task.config or not hasattr(task, "prompt"):
      raise ConfigError(f"--prime/--{'/--'.join(overrides) or 'temperature'} apply to music models only")
    task.config.sample.update(overrides)
    task.validate()
  if prime:
    from artjax.music import encoding, render
    if not os.path.exists(prime):
      raise ConfigError(f"--prime file {prime!r} does not exist")
    try:
      roll = render.read_midi(prime)
    except Exception as e:
      raise ConfigError(f"--prime {prime!r} is not a readable MIDI file: {e}") from e
    if not len(roll) or len(roll) >= task.config.sample.num_frames:
      raise ConfigError(f"--prime {prime!r} has {len(roll)} frames; it needs 1.."
                        f"{task.config.sample.num_frames - 1} (sample.num_frames)")
    opening = tuple(int(t) for t in encoding.roll_to_tokens(roll))
  fn = task.sample if opening is None else (lambda st, sd, n: task.sample(st, sd, n, opening))
  samples = jax.jit(fn, static_argnums=2)(state, seed, num)
  samples = jax.device_get(samples)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  task.write_samples(samples, out, grid)
  print(f"wrote {num} samples to {out}" + (f" and a grid to {grid}" if grid else ""))
  return samples
