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

import abc

import jax
import jax.numpy as jnp
import numpy as np

from artjax import ConfigError
from artjax.engine import compress
from artjax.tasks.base import Task

MASK = "prune_mask"
#: the capabilities a task declares on its class (artjax.tasks.base.Task's public class
#: attributes, read off the class itself)
DECLARED = tuple(n for n, v in vars(Task).items() if not n.startswith("_") and not callable(v)
                 and not isinstance(v, (property, classmethod, staticmethod)))


def _forward(name):
  return property(lambda self: getattr(self.inner, name))


class Wrapper(Task):
  """`inner` with every declared capability and every method of the Task interface forwarded
  (generated below from `Task` itself, so a method added to the interface is forwarded too; see
  the module docstring). A wrapper overrides only what it changes."""

  def __init__(self, inner: Task, config):
    self.inner = inner
    super().__init__(config)

  def validate(self):
    pass

  @property
  def unwrapped(self):
    return self.inner.unwrapped

  def unwrap(self, state, replica=None):
    return self.inner.unwrap(state, replica)


def _forward_method(name):
  def method(self, *args, **kwargs):
    return getattr(self.inner, name)(*args, **kwargs)
  method.__name__ = method.__qualname__ = name
  method.__doc__ = f"`inner.{name}` (see artjax.tasks.base.Task.{name})."
  return method


def _interface() -> list:
  """Every public method of the Task interface (artjax.tasks.base.Task), as declared there."""
  return [n for n, m in vars(Task).items() if not n.startswith("_") and callable(m)
          and not isinstance(m, (classmethod, staticmethod, property))]


for _name in DECLARED:
  setattr(Wrapper, _name, _forward(_name))
for _name in _interface():
  if _name not in vars(Wrapper):        # what Wrapper itself defines (validate, unwrap)
    setattr(Wrapper, _name, _forward_method(_name))
abc.update_abstractmethods(Wrapper)


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
