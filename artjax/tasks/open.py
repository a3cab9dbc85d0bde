"""A workdir's task and state: what every command that reads a trained run goes through."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from artjax import ConfigError
from artjax.engine import checkpoint, compress
from artjax.engine.workdir import load_config, restore
from artjax.tasks.build import build_task, quant_bits


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
             replica: int | None = None, sample: dict | None = None):
  """(task, state) of a workdir, on one device. For a population, `replica` picks one
  member and the inner task is returned; a pruned run gives its inner task; a quantised
  run gives its inference state, dequantised. `sample`: per-call values of the task's
  declared `sample_options` ({name: value}): the task is built from a copy of the run's
  config with them in its `sample` block (validated as any config; the run is unchanged)."""
  config = load_config(workdir)
  task = build_task(config)
  if sample:
    check_sample_options(task, sample)
    config.sample.update(sample)          # the config read from disk: a copy
    task = build_task(config)
  if quant_bits(config):
    stored, unpack = _restore_quantized(workdir, task, config, step, best)
    state = jax.jit(unpack)(stored)
  else:
    state = restore(workdir, task, config.seed, step=step, best=best)
  _check_finite(state, workdir)
  return task.unwrap(state, replica)


def check_sample_options(task, names) -> None:
  """ConfigError unless every option in `names` is one `task` declares."""
  bad = sorted(set(names) - set(task.sample_options))
  if bad:
    raise ConfigError(f"--{bad[0]} does not apply to {type(task.unwrapped).__name__} runs "
                      f"(options: {', '.join(task.sample_options) or 'none'})")


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
  return task, task.inference_state(state), lambda s: s


