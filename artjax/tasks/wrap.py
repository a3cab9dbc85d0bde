"""Wrappers: a task around a task. `Wrapper` forwards the whole Task interface (every
declared capability and every method) to `inner`; a wrapper overrides only what it changes,
so callers never ask which wrapper they hold. `unwrap(state, replica)` gives the model a user
samples, evaluates or deploys: (task, state) with every wrapper's additions removed.

- `Population(task)`: R independent models trained in one compiled program.

      train.num_replicas = R
      population.NAME = (v_0, ..., v_{R-1})   # optional, NAME in the task's `hparams`

  Its state is the inner task's state stacked over replicas (vmap): replica r starts from seed
  `config.seed + r` with its own hyper-parameters, which live in its state as arrays (injected
  optimizer hyper-parameters, EMA decay), so all replicas share one trace. Replica r equals a
  single run with that seed and those hyper-parameters. Metrics and evaluations come back as
  [R] vectors; the best state is chosen per replica. The training loop never sees replicas.

- `Pruned(task)`: a trained run's weights with the smallest magnitudes zeroed, trained on
  (recovery) with the zeros held fixed.

      prune.sparsity = 0.5           fraction of the kernel weights dropped (global ranking)
      prune.init_from = RUN          the trained run whose weights are pruned

  Its state is the inner state plus `prune_mask` (bool, True = kept, shaped like the sampled
  weights). The mask is computed once, when the warm start loads the trained weights
  (`from_pretrained`), and applied to every tree in `task.weight_keys()` (a GAN's EMA and
  trained generator); after each inner step the pruned weights are set back to zero
  (projected training), so they stay exactly zero. The discriminator stays dense.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from artjax import ConfigError
from artjax.engine import compress
from artjax.tasks.base import Task

MASK = "prune_mask"
#: the capabilities a task declares on its class (see artjax.tasks.base.Task)
DECLARED = ("eval_key", "sample_kind", "sample_options", "hparams", "opt_keys", "members",
            "transforms_images", "repairs_images", "translates_images", "animation_spaces",
            "projects_images", "finetune")


def _forward(name):
  return property(lambda self: getattr(self.inner, name))


class Wrapper(Task):
  """`inner` with every declared capability and method forwarded (see the module docstring)."""

  def __init__(self, inner: Task, config):
    self.inner = inner
    super().__init__(config)

  def validate(self):
    pass

  def describe(self):
    return self.inner.describe()

  def requirements(self, evaluating):
    return self.inner.requirements(evaluating)

  def warm_start(self):
    return self.inner.warm_start()

  def device_data(self):
    return self.inner.device_data()

  def init_state(self, seed):
    return self.inner.init_state(seed)

  def train_step(self, state, data):
    return self.inner.train_step(state, data)

  def set_hparams(self, state, hparams):
    return self.inner.set_hparams(state, hparams)

  def from_pretrained(self, state, pretrained):
    return self.inner.from_pretrained(state, pretrained)

  def summary_images(self, state):
    return self.inner.summary_images(state)

  def grid_columns(self):
    return self.inner.grid_columns()

  def evaluate(self, state, data):
    return self.inner.evaluate(state, data)

  def select_best(self, better, state, best):
    return self.inner.select_best(better, state, best)

  def sample(self, state, seed, num, opening=None):
    return self.inner.sample(state, seed, num, opening)

  def transform(self, state, images):
    return self.inner.transform(state, images)

  def repair(self, state, images_u8, missing, key=None, settings=None):
    return self.inner.repair(state, images_u8, missing, key, settings)

  def translate(self, state, images_u8):
    return self.inner.translate(state, images_u8)

  def weight_keys(self):
    return self.inner.weight_keys()

  def param_axes(self):
    return self.inner.param_axes()

  def inference_state(self, state):
    return self.inner.inference_state(state)

  def sampler(self, state):
    return self.inner.sampler(state)

  def row_sampler(self, state, max_num):
    return self.inner.row_sampler(state, max_num)

  def walk_sampler(self, state, keyframes=4):
    return self.inner.walk_sampler(state, keyframes)

  def read_opening(self, path):
    return self.inner.read_opening(path)

  def write_samples(self, samples, out, grid=None):
    return self.inner.write_samples(samples, out, grid)

  def check_grid(self, grid):
    return self.inner.check_grid(grid)

  def report(self, state, num, seed, workdir, suffix="", checkpoint="latest", options=None):
    return self.inner.report(state, num, seed, workdir, suffix, checkpoint, options)

  @property
  def unwrapped(self):
    return self.inner.unwrapped

  def unwrap(self, state, replica=None):
    return self.inner.unwrap(state, replica)


for _name in DECLARED:
  setattr(Wrapper, _name, _forward(_name))


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


class Population(Wrapper):
  """R replicas of `inner` as one task (see the module docstring)."""

  members = property(lambda self: self.replicas)

  def __init__(self, inner: Task, config):
    self.replicas = config.train.num_replicas
    super().__init__(inner, config)

  def validate(self):
    self.hp = {k: jnp.asarray(v) for k, v in hparams(self.config, self.inner.hparams).items()}

  def describe(self):
    return f"population of {self.replicas} x {self.inner.describe()}"

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

  def select_best(self, better, state, best):
    mask = jnp.asarray(better)
    return jax.tree.map(
        lambda a, b: jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), state, best)

  def unwrap(self, state, replica=None):
    """(inner task, replica `replica`'s state): a population is sampled one member at a time."""
    if replica is None:
      raise ConfigError(f"this run holds a population of {self.replicas} replicas: pass "
                        f"--replica=0..{self.replicas - 1}")
    if not 0 <= replica < self.replicas:
      raise ConfigError(f"--replica={replica} is out of range 0..{self.replicas - 1}")
    return self.inner.unwrap(jax.tree.map(lambda x: x[replica], state))

  def sample(self, state, seed, num, opening=None):
    raise ConfigError("a population is sampled one replica at a time (--replica=R)")


class Pruned(Wrapper):
  """`inner` with a fixed magnitude-pruning mask (see the module docstring)."""

  def __init__(self, inner: Task, config):
    self.sparsity = float(config.prune.sparsity)
    super().__init__(inner, config)

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

  def warm_start(self):
    return self.config.prune.init_from

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

  def sample(self, state, seed, num, opening=None):
    return self.inner.sample(self.strip(state), seed, num, opening)

  def inference_state(self, state):
    return self.inner.inference_state(self.strip(state))

  def sampler(self, state):
    return self.inner.sampler(self.strip(state))

  def row_sampler(self, state, max_num):
    return self.inner.row_sampler(self.strip(state), max_num)

  def report(self, state, num, seed, workdir, suffix="", checkpoint="latest", options=None):
    return self.inner.report(self.strip(state), num, seed, workdir, suffix, checkpoint, options)

  def unwrap(self, state, replica=None):
    """The inner task and its state: the mask has already zeroed the pruned weights."""
    return self.inner.unwrap(self.strip(state), replica)
