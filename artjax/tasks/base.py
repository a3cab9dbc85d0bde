"""The task interface: everything the one training loop needs to know about a task.

A task owns its models, losses and data layout. The loop owns the run: devices,
jit/scan, checkpoints, logging, resume. All `state` arguments are one pytree of
arrays (a dict with at least `step`, int32); every method used inside the loop's
compiled code is a pure function.
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp
import numpy as np


class Task(abc.ABC):
  """Interface between a task (GAN, music, style transfer, ...) and `artjax.train`."""

  #: name of the scalar metric `evaluate` returns that is better when lower (for "best"
  #: checkpoints); None when the task has none.
  eval_key: str | None = None

  def __init__(self, config):
    self.config = config

  # --- host side, before anything compiles -----------------------------------------
  @abc.abstractmethod
  def validate(self) -> None:
    """Raises artjax.ConfigError for a bad config. Must not load data or compile."""

  @abc.abstractmethod
  def device_data(self) -> dict:
    """The task's data as numpy arrays, placed on device whole by the loop.

    `["train"]`: per-example arrays (leading axis N), split over the data axis and
    across hosts; the loop adds `["train_size"]` (N). Anything else is replicated."""

  # --- pure functions (run under jit) -----------------------------------------------
  @abc.abstractmethod
  def init_state(self, seed) -> dict:
    """Fresh run state for an int seed (the same seed gives the same state)."""

  @abc.abstractmethod
  def train_step(self, state: dict, data: dict) -> tuple[dict, dict]:
    """One optimisation step: (state, data) -> (new state, scalar metrics)."""

  def set_hparams(self, state: dict, hparams: dict) -> dict:
    """Pure: `state` with per-replica hyper-parameters (see artjax.population) applied."""
    raise NotImplementedError(f"{type(self).__name__} does not support population hyper-parameters")

  def from_pretrained(self, state: dict, pretrained: dict) -> dict:
    """Pure: `state` with the model weights of a pretrained run's state (fine-tuning).
    Raises artjax.ConfigError when shapes do not match."""
    raise NotImplementedError(f"{type(self).__name__} cannot start from a pretrained run")

  def summary_images(self, state: dict) -> jax.Array | None:
    """uint8 [N,H,W,C] images for the periodic sample grid (None: no grid)."""
    return None

  def grid_columns(self) -> int | None:
    return None

  def evaluate(self, state: dict, data: dict) -> dict:
    """Scalar validation metrics (pure); {} when the task has none."""
    return {}

  @abc.abstractmethod
  def sample(self, state: dict, seed, num: int) -> dict:
    """Pure sampling: a dict of arrays (e.g. images uint8, labels)."""

  # --- host side, after sampling -----------------------------------------------------
  def write_samples(self, samples: dict, out: str, grid: str | None = None) -> None:
    np.savez(out, **{k: np.asarray(v) for k, v in samples.items()})


def split_rng(raw, num: int):
  keys = jax.random.split(jax.random.wrap_key_data(raw), num)
  return jax.random.key_data(keys[0]), keys[1:]


def tree_ema(ema, new, decay):
  return jax.tree.map(lambda e, p: (decay * e + (1.0 - decay) * p).astype(e.dtype), ema, new)


def cast_floating(tree, dtype):
  return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)
