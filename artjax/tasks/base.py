"""The task interface: everything the one training loop (and every command) needs to know
about a task.

A task owns its models, losses and data layout. The loop owns the run: devices,
jit/scan, checkpoints, logging, resume. All `state` arguments are one pytree of
arrays (a dict with at least `step`, int32); every method used inside the loop's
compiled code is a pure function. What a task can do is declared on the class (the class
attributes below); callers read those, they never probe with hasattr.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from artjax import ConfigError
from artjax.engine import optim

DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class Sampler:
  """A pure sampling function and its signature (see `Task.sampler`).

  inputs / outputs: ((name, dtype name, shape with "B" for the batch axis, meaning), ...);
  notes: what else a user of the exported function should know."""
  fn: Callable
  inputs: tuple
  outputs: tuple
  notes: str = ""


class Task(abc.ABC):
  """Interface between a task (GAN, music, classifier, ...) and `artjax.engine.loop`."""

  #: name of the scalar metric `evaluate` returns that is better when lower (for "best"
  #: checkpoints and early stopping); None when the task has none.
  eval_key: str | None = None
  #: what `sample` returns and `write_samples` writes: "images", "tokens" or None.
  sample_kind: str | None = None
  #: sampling options a user may override per call (`run.py sample --NAME=...`), read from
  #: and written to `config.sample`; plus "prime" when `sample` accepts an opening.
  sample_options: tuple = ()
  #: hyper-parameters a population can vary per replica (`population.NAME` lists).
  hparams: tuple = ("lr", "weight_decay")
  #: state keys holding optimizer states (fresh after a merge or a warm start).
  opt_keys: tuple = ("opt",)
  #: independent models in the state (a population's replicas). With more than one,
  #: metrics are [members] vectors and the best state is chosen per member: the loop keeps
  #: it on device and lets `select_best` merge it.
  members: int = 1
  #: `transform(state, images)` maps float images to float images (a style network).
  transforms_images: bool = False
  #: `repair(state, images_u8, missing, key, settings)` fills the missing pixels of images:
  #: "network" (a feed-forward inpainting network: one call, served as a tool) or "inversion"
  #: (a generator's latent fitted to the visible pixels); "" = it does not repair
  repairs_images: str = ""
  #: `translate(state, images_u8)` turns pictures in one style into another (paired
  #: image-to-image translation, `run.py translate`).
  translates_images: bool = False
  #: `keyframes(state, z, labels, space)` / `render(state, latents, labels, space)` walk the
  #: latent spaces named here (`run.py animate`); () = not an image generator
  animation_spaces: tuple = ()
  #: `project(state, images_u8, key, settings, features)` finds each picture's latent
  #: (`run.py project`)
  projects_images: bool = False

  #: artjax.engine.peft.FineTune when the config fine-tunes, else None (set by `validate`).
  finetune = None

  @classmethod
  def takes(cls, config) -> bool:
    """For a member of a task family (artjax.tasks.build.MEMBERS: several classes under one
    `config.task`): whether it, rather than the family's class, builds `config` (picked by the
    data, e.g. music on a user's MIDI, a GAN on piano rolls)."""
    return False

  def __init__(self, config):
    """Built in one step: the config is checked here (a ConfigError before any I/O)."""
    self.config = config
    self.validate()

  # --- host side, before anything compiles -----------------------------------------
  @abc.abstractmethod
  def validate(self) -> None:
    """Called by the constructor: raises artjax.ConfigError for a bad config. Must not load
    data or compile."""

  def describe(self) -> str:
    return type(self).__name__

  def requirements(self, evaluating: bool) -> list:
    """[(config, workdir)] of runs that must be trained before this task's data can be
    built (e.g. the evaluator classifier); `evaluating`: periodic evaluation is on."""
    return []

  def warm_start(self) -> str:
    """A workdir whose latest weights a fresh run starts from ("" = none); see
    `from_pretrained`."""
    return ""

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
    """Pure: `state` with per-replica hyper-parameters (see `hparams`) applied."""
    new = dict(state)
    if "lr" in hparams:
      new["opt"] = optim.set_hyperparams(new["opt"], lr_scale=hparams["lr"] / self.config.optim.lr)
    if "weight_decay" in hparams:
      new["opt"] = optim.set_hyperparams(new["opt"], weight_decay=hparams["weight_decay"])
    return new

  def from_pretrained(self, state: dict, pretrained: dict) -> dict:
    """Pure: `state` with the model weights of a pretrained run's state (fine-tuning).
    Raises artjax.ConfigError when shapes do not match."""
    raise ConfigError(f"{type(self).__name__} cannot start from a pretrained run")

  def summary_images(self, state: dict) -> dict:
    """{tag: uint8 [N,H,W,C]} images for the periodic sample grid ({} = no grid)."""
    return {}

  def grid_columns(self) -> int | None:
    return None

  def evaluate(self, state: dict, data: dict) -> dict:
    """Validation metrics (pure); {} when the task has none."""
    return {}

  def select_best(self, better, state: dict, best: dict) -> dict:
    """The best state so far: `state` where `better`, else `best` (see `members`)."""
    return state

  def sample(self, state: dict, seed, num: int, opening=None) -> dict:
    """Pure sampling: a dict of arrays (e.g. images uint8, labels)."""
    raise ConfigError(f"a {type(self).__name__} has nothing to sample")

  def transform(self, state: dict, images):
    """Pure: float images [B, H, W, 3] in [0, 1] -> images of the same shape (see
    `transforms_images`; sides multiples of `image_multiple`)."""
    raise ConfigError(f"a {type(self).__name__} does not transform images")

  def repair(self, state: dict, images_u8, missing, key=None, settings=None) -> dict:
    """Pure: uint8 images [N, H, W, C] with bool `missing` [N, H, W] -> {"images": uint8, the
    visible pixels unchanged, ("labels": the inferred classes)} (see `repairs_images`)."""
    raise ConfigError(f"a {type(self).__name__} does not repair images")

  def translate(self, state: dict, images_u8) -> dict:
    """Pure: uint8 images [N, H, W, C] -> {"images": uint8 of the same shape} in the target
    style (see `translates_images`)."""
    raise ConfigError(f"a {type(self).__name__} does not translate images")

  def weight_keys(self) -> tuple:
    """State keys holding the weights of the model that `sample` draws from, the sampled
    one first (GAN: the EMA generator, then the trained one); () = nothing to deploy.
    Pruning masks all of them; quantisation and export keep the first."""
    return ()

  def param_axes(self) -> dict:
    """Logical axis names of the model weights (artjax.nn.logical): {state key: a
    pytree of name tuples shaped like the weights under that key}. The loop lays out those
    weights and every state leaf with the same inner path and trailing shape (optimizer
    moments, EMA copies, masks, a population's replicas) by artjax.engine.parallel.RULES on the
    mesh; {} = every leaf replicated."""
    return {}

  def inference_state(self, state: dict) -> dict:
    """Pure: the part of `state` that `sample` and the evaluations of `run.py eval` read."""
    keys = self.weight_keys()
    if not keys:
      raise ConfigError(f"a {type(self).__name__} has no model to deploy")
    return {"step": state["step"], keys[0]: state[keys[0]]}

  def sampler(self, state: dict) -> Sampler:
    """The sampling function for export and serving: `fn(*inputs)` with a batch dimension
    "B" taken from an input's shape; the same seed and inputs give the bytes `sample`
    gives."""
    raise ConfigError(f"a {type(self).__name__} run has no exportable sampler (export and serve "
                      "know image GANs and music Transformers)")

  def export_files(self) -> dict:
    """{file name: bytes} that `run.py export` writes beside the sampler (e.g. poetry's
    vocabulary and masks); none by default."""
    return {}

  def walk_sampler(self, state: dict, keyframes: int = 4) -> Sampler | None:
    """For the service's /v1/animate: a Sampler of frames of a latent walk (see GANTask);
    None when the task draws no walks."""
    return None

  def row_sampler(self, state: dict, max_num: int) -> Sampler | None:
    """For a service that merges requests into one call: a Sampler whose rows each carry
    their own request's seed and row index (row r equals row rows[r] of `sample` with seed
    seeds[r]); None when rows cannot be mixed (then a request is one call)."""
    return None

  def read_opening(self, path: str):
    """Tokens of an opening read from a file (the "prime" sample option)."""
    raise ConfigError(f"--prime: a {type(self).__name__} takes no opening")

  @property
  def unwrapped(self) -> "Task":
    """The task of the model itself, without wrappers (see `unwrap` for its state)."""
    return self

  def unwrap(self, state: dict, replica: int | None = None) -> tuple:
    """(task, state) of the model a user samples, evaluates or deploys (wrappers remove
    what they added; a population picks `replica`)."""
    if replica is not None:
      raise ConfigError("--replica: this run holds a single model, not a population")
    return self, state

  def report(self, state: dict, num: int | None, seed: int, workdir: str, suffix: str = "",
             checkpoint: str = "latest", options: dict | None = None) -> dict:
    """`run.py eval`: the samples' quality beside the real-data floor, written as
    eval{suffix}.json / .md (and pictures) in `workdir`; returns the result. `options`: what
    the user asked of this kind of report (images: {"inception": weights path})."""
    raise ConfigError(f"run.py eval: a {type(self).__name__} has no samples to evaluate")

  # --- host side, after sampling -----------------------------------------------------
  def check_grid(self, grid: str) -> None:
    """ConfigError, before anything is sampled, when this task cannot draw the `grid` PNG."""

  def write_samples(self, samples: dict, out: str, grid: str | None = None) -> None:
    np.savez(out, **{k: np.asarray(v) for k, v in samples.items()})

  # --- helpers for subclasses -----------------------------------------------------------
  def _check_common(self) -> None:
    """Checks every task shares: batch size, compute dtype."""
    c = self.config
    if c.train.batch_size <= 0:
      raise ConfigError(f"train.batch_size must be > 0, got {c.train.batch_size}")
    if c.train.dtype not in DTYPES:
      raise ConfigError(f"unknown train.dtype {c.train.dtype!r}; choose one of {tuple(DTYPES)}")
    self.compute_dtype = DTYPES[c.train.dtype]


def split_rng(raw, num: int):
  keys = jax.random.split(jax.random.wrap_key_data(raw), num)
  return jax.random.key_data(keys[0]), keys[1:]


def tree_ema(ema, new, decay):
  return jax.tree.map(lambda e, p: (decay * e + (1.0 - decay) * p).astype(e.dtype), ema, new)


def cast_floating(tree, dtype):
  return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)
