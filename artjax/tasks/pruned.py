"""Pruned models as a Task: a trained run's weights with the smallest magnitudes zeroed,
trained on (recovery) with the zeros held fixed.

    prune.sparsity = 0.5           fraction of the kernel weights dropped (global ranking)
    prune.init_from = RUN          the trained run whose weights are pruned

`Pruned(task, config)` wraps the inner task like a Population does: its state is the
inner state plus `prune_mask` (bool, True = kept, shaped like the sampled weights). The
mask is computed once, when the warm start loads the trained weights (`from_pretrained`),
and applied to every tree in `task.weight_keys()` (a GAN's EMA and trained generator);
after each inner step the pruned weights are set back to zero (projected training), so
they stay exactly zero. The discriminator (a training-only model) stays dense.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from artjax import ConfigError, compress
from artjax.tasks.base import Task

MASK = "prune_mask"


class Pruned(Task):
  """`inner` with a fixed magnitude-pruning mask (see the module docstring)."""

  def __init__(self, inner: Task, config):
    super().__init__(config)
    self.inner = inner
    for name in ("eval_key", "sample_kind", "sample_options", "hparams", "opt_keys"):
      setattr(self, name, getattr(inner, name))
    self.sparsity = float(config.prune.sparsity)

  def validate(self):
    if not 0.0 < self.sparsity < 1.0:
      raise ConfigError(f"prune.sparsity must be in (0, 1), got {self.sparsity}")
    if not self.inner.weight_keys():
      raise ConfigError(f"a {type(self.inner).__name__} run with fine-tuning factors cannot be "
                        "pruned: merge it first (run.py merge), or it has no model to prune")
    if not self.config.prune.init_from:
      raise ConfigError("prune.init_from (the trained workdir to prune) is not set")

  def describe(self):
    return f"{self.inner.describe()}, pruned to {self.sparsity:.0%} sparsity (mask fixed)"

  def param_axes(self):
    return self.inner.param_axes()

  def requirements(self, evaluating):
    return self.inner.requirements(evaluating)

  def warm_start(self):
    return self.config.prune.init_from

  def device_data(self):
    return self.inner.device_data()

  @staticmethod
  def strip(state):
    """The inner task's state."""
    return {k: v for k, v in state.items() if k != MASK}

  def _masked(self, state, mask):
    new = dict(state)
    for k in self.inner.weight_keys():
      new[k] = compress.apply_mask(state[k], mask)
    return new

  def init_state(self, seed):
    state = self.inner.init_state(seed)
    weights = state[self.inner.weight_keys()[0]]
    state[MASK] = jax.tree.map(lambda x: jnp.ones(x.shape, bool), weights)
    return state

  def from_pretrained(self, state, pretrained):
    new = self.inner.from_pretrained(self.strip(state), self.strip(pretrained))
    mask = compress.magnitude_mask(new[self.inner.weight_keys()[0]], self.sparsity)
    new = self._masked(new, mask)
    new[MASK] = mask
    return new

  def train_step(self, state, data):
    new, metrics = self.inner.train_step(self.strip(state), data)
    new = self._masked(new, state[MASK])
    new[MASK] = state[MASK]
    return new, metrics

  def set_hparams(self, state, hparams):
    return dict(self.inner.set_hparams(self.strip(state), hparams), **{MASK: state[MASK]})

  def evaluate(self, state, data):
    return self.inner.evaluate(self.strip(state), data)

  def summary_images(self, state):
    return self.inner.summary_images(self.strip(state))

  def grid_columns(self):
    return self.inner.grid_columns()

  def weight_keys(self):
    return self.inner.weight_keys()

  def sample(self, state, seed, num, opening=None):
    return self.inner.sample(self.strip(state), seed, num, opening)

  def write_samples(self, samples, out, grid=None):
    return self.inner.write_samples(samples, out, grid)
