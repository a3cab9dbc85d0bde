"""`run.py sample`: draw samples from a trained workdir and write them as files."""

from __future__ import annotations

import os

import jax

from artjax import ConfigError, runs

MAX_NUM = 65536


def sample_to_file(workdir: str, num: int, out: str, *, seed: int = 0, grid: str | None = None,
                   replica: int | None = None, options: dict | None = None):
  """Samples `num` items from the latest checkpoint into `out` (the task's file format).

  `options`: per-call overrides of the task's declared `sample_options` (None = unset)."""
  if not 0 < num <= MAX_NUM:
    raise ConfigError(f"--num must be in 1..{MAX_NUM:,} (one call holds every sample in memory; "
                      f"sample larger sets with several --seed values), got {num:,}")
  task, state = runs.open_run(workdir, replica=replica)
  options = {k: v for k, v in (options or {}).items() if v is not None}
  bad = sorted(set(options) - set(task.sample_options))
  if bad:
    raise ConfigError(f"--{bad[0]} does not apply to {type(task).__name__} runs "
                      f"(options: {', '.join(task.sample_options) or 'none'})")
  prime = options.pop("prime", None)
  if options:
    task.config.sample.update(options)
    task.validate()
  opening = task.read_opening(prime) if prime else None
  fn = jax.jit(lambda st, sd, n: task.sample(st, sd, n, opening), static_argnums=2)
  samples = jax.device_get(fn(state, seed, num))
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  task.write_samples(samples, out, grid)
  print(f"wrote {num} samples to {out}" + (f" and a grid to {grid}" if grid else ""))
  return samples
