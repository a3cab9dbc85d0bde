"""Populations: R independent models trained in one compiled program (vmap over the state).

    train.num_replicas = R
    population.lr / d_lr / weight_decay / ema_decay = (v_0, ..., v_{R-1})   # optional

Replica r starts from seed `config.seed + r` with its own hyper-parameters, which live in
its state as arrays (injected optimizer hyper-parameters, EMA decay), so all replicas share
one trace. Replica r equals a single run with that seed and those hyper-parameters.
With R == 1 and no population lists, nothing is vmapped (the state has no replica axis).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from artjax import ConfigError

HPARAMS = ("lr", "d_lr", "weight_decay", "ema_decay")


def num_replicas(config) -> int:
  return int(config.train.get("num_replicas", 1))


def is_population(config) -> bool:
  return num_replicas(config) > 1


def hparams(config) -> dict:
  """{name: float32 [R]} for every population list in the config (validated)."""
  r = num_replicas(config)
  pop = config.get("population", None)
  out = {}
  if r < 1:
    raise ConfigError(f"train.num_replicas must be >= 1, got {r}")
  if pop is None:
    return out
  for k, v in pop.items():
    if k not in HPARAMS:
      raise ConfigError(f"unknown population.{k}; choose from {HPARAMS}")
    if v is None or len(v) == 0:
      continue
    if len(v) != r:
      raise ConfigError(f"population.{k} has {len(v)} values but train.num_replicas={r}")
    out[k] = np.asarray(v, np.float32)
  if out and r == 1:
    raise ConfigError("population lists need train.num_replicas > 1")
  return out


def init_fn(task, config):
  """seed -> state, stacked over replicas for a population."""
  if not is_population(config):
    return task.init_state
  r = num_replicas(config)
  hp = hparams(config)

  def init(seed):
    seeds = seed + jnp.arange(r)
    def one(s, h):
      state = task.init_state(s)
      return task.set_hparams(state, h) if h else state
    return jax.vmap(one)(seeds, {k: jnp.asarray(v) for k, v in hp.items()})
  return init


def step_fn(task, config):
  if not is_population(config):
    return task.train_step
  return jax.vmap(task.train_step, in_axes=(0, None))


def map_fn(fn, config):
  """Lifts a (state, ...) -> out function over the replica axis."""
  if not is_population(config):
    return fn
  return lambda state, *args: jax.vmap(lambda s: fn(s, *args))(state)


def replica(state, r: int):
  return jax.tree.map(lambda x: x[r], state)
