"""Populations: R independent models trained in one compiled program, as a Task.

    train.num_replicas = R
    population.NAME = (v_0, ..., v_{R-1})   # optional, NAME in the task's `hparams`

`Population(task, config)` is itself a Task whose state is the inner task's state stacked
over replicas (vmap): replica r starts from seed `config.seed + r` with its own
hyper-parameters, which live in its state as arrays (injected optimizer hyper-parameters,
EMA decay), so all replicas share one trace. Replica r equals a single run with that seed
and those hyper-parameters. Metrics and evaluations come back as [R] vectors; the best
state is chosen per replica. The training loop never sees replicas.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from artjax import ConfigError
from artjax.tasks.base import Task


def hparams(config, names: tuple) -> dict:
  """{name: float32 [R]} for every non-empty population list in the config (validated)."""
  r = config.train.num_replicas
  if r < 1:
    raise ConfigError(f"train.num_replicas must be >= 1, got {r}")
  out = {}
  for k, v in config.population.items():
    if k not in names:
      raise ConfigError(f"unknown population.{k}; choose from {names}")
    if v is None or len(v) == 0:
      continue
    if len(v) != r:
      raise ConfigError(f"population.{k} has {len(v)} values but train.num_replicas={r}")
    out[k] = np.asarray(v, np.float32)
  if out and r == 1:
    raise ConfigError("population lists need train.num_replicas > 1")
  return out


def replica(state, r: int):
  return jax.tree.map(lambda x: x[r], state)


class Population(Task):
  """R replicas of `inner` as one task (see the module docstring)."""

  def __init__(self, inner: Task, config):
    super().__init__(config)
    self.inner = inner
    self.replicas = self.members = config.train.num_replicas
    self.eval_key = inner.eval_key
    self.sample_kind = inner.sample_kind
    self.opt_keys = inner.opt_keys
    self.finetune = inner.finetune

  def validate(self):
    self.hp = {k: jnp.asarray(v) for k, v in hparams(self.config, self.inner.hparams).items()}

  def describe(self):
    return f"population of {self.replicas} x {self.inner.describe()}"

  def param_axes(self):
    return self.inner.param_axes()

  def requirements(self, evaluating):
    return self.inner.requirements(evaluating)

  def warm_start(self):
    return self.inner.warm_start()

  def device_data(self):
    return self.inner.device_data()

  def init_state(self, seed):
    def one(s, h):
      state = self.inner.init_state(s)
      return self.inner.set_hparams(state, h) if h else state
    return jax.vmap(one)(seed + jnp.arange(self.replicas), self.hp)

  def train_step(self, state, data):
    return jax.vmap(self.inner.train_step, in_axes=(0, None))(state, data)

  def from_pretrained(self, state, pretrained):
    return jax.vmap(self.inner.from_pretrained, in_axes=(0, None))(state, pretrained)

  def evaluate(self, state, data):
    return jax.vmap(lambda s: self.inner.evaluate(s, data))(state)

  def summary_images(self, state):
    per = jax.vmap(self.inner.summary_images)(state)
    return {f"{tag}/r{r}": im[r] for tag, im in per.items() for r in range(self.replicas)}

  def grid_columns(self):
    return self.inner.grid_columns()

  def select_best(self, better, state, best):
    mask = jnp.asarray(better)
    return jax.tree.map(
        lambda a, b: jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), state, best)

  def member(self, state, r: int):
    """(inner task, replica r's state)."""
    if not 0 <= r < self.replicas:
      raise ConfigError(f"--replica={r} is out of range 0..{self.replicas - 1}")
    return self.inner, replica(state, r)
