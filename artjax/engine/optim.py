"""Optax optimizers built from config.

    optim.name          adam | adamw | sgd
    optim.lr            peak learning rate
    optim.b1, optim.b2  Adam betas (sgd: b1 is the momentum)
    optim.weight_decay  decoupled weight decay, theta <- theta - lr * wd * theta,
                        applied to kernels/embeddings only (never biases or norm scales)
    optim.schedule      constant | cosine (after linear warmup)
    optim.warmup_steps  linear warmup from 0 to lr
    optim.clip_norm     global-norm clipping (0 = off)
    optim.grad_accum    accumulate gradients over k calls before one update (1 = off)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from artjax import ConfigError
from artjax.engine import keypath

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
_DECAYED_LEAVES = ("kernel", "embedding")


def decay_mask(params):
  """True for leaves that get weight decay: dense/conv kernels and embeddings."""
  def is_decayed(path, _):
    return keypath.names(path)[-1] in _DECAYED_LEAVES
  return jax.tree_util.tree_map_with_path(is_decayed, params)


def learning_rate_schedule(cfg, total_steps: int):
  if cfg.schedule == "constant":
    if cfg.warmup_steps:
      return optax.linear_schedule(0.0, cfg.lr, cfg.warmup_steps)
    return cfg.lr
  if cfg.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0, cfg.lr, warmup_steps=max(cfg.warmup_steps, 0),
        decay_steps=max(total_steps, cfg.warmup_steps + 1), end_value=cfg.lr * cfg.end_lr_frac)
  raise ConfigError(f"unknown optim.schedule {cfg.schedule!r}; choose one of {SCHEDULES}")


def validate(cfg, where="optim"):
  if cfg.name not in OPTIMIZERS:
    raise ConfigError(f"unknown {where}.name {cfg.name!r}; choose one of {OPTIMIZERS}")
  if cfg.schedule not in SCHEDULES:
    raise ConfigError(f"unknown {where}.schedule {cfg.schedule!r}; choose one of {SCHEDULES}")
  if not cfg.lr > 0:
    raise ConfigError(f"{where}.lr must be > 0, got {cfg.lr}")
  if cfg.weight_decay < 0:
    raise ConfigError(f"{where}.weight_decay must be >= 0, got {cfg.weight_decay}")
  if cfg.grad_accum < 1:
    raise ConfigError(f"{where}.grad_accum must be >= 1, got {cfg.grad_accum}")
  if cfg.clip_norm < 0:
    raise ConfigError(f"{where}.clip_norm must be >= 0, got {cfg.clip_norm}")


def make_optimizer(cfg, total_steps: int) -> optax.GradientTransformation:
  """clip -> Adam/momentum -> masked decoupled decay -> -lr(t) * lr_scale, (accumulated).

  `lr_scale` and `weight_decay` are injected hyper-parameters: they live in the optimizer
  state as arrays, so a population of replicas (vmap) can give each replica its own
  (see `set_hyperparams`)."""
  validate(cfg)
  lr = learning_rate_schedule(cfg, total_steps // max(cfg.grad_accum, 1))

  def chain(lr_scale, weight_decay):
    parts = []
    if cfg.clip_norm:
      parts.append(optax.clip_by_global_norm(cfg.clip_norm))
    if cfg.name in ("adam", "adamw"):
      parts.append(optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.eps))
    elif cfg.b1:
      parts.append(optax.trace(decay=cfg.b1))
    # Plain `adam` with weight_decay > 0 decays decoupled too (AdamW); coupled L2 is not
    # offered. Always in the chain (a no-op at 0) so replicas may differ in weight decay.
    parts.append(optax.add_decayed_weights(weight_decay, mask=decay_mask))
    parts.append(optax.scale_by_learning_rate(lr))
    parts.append(optax.scale(lr_scale))
    return optax.chain(*parts)

  tx = optax.inject_hyperparams(chain)(lr_scale=1.0, weight_decay=float(cfg.weight_decay))
  if cfg.grad_accum > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=cfg.grad_accum)
  return tx


def freeze(tx: optax.GradientTransformation, frozen: tuple) -> optax.GradientTransformation:
  """`tx` for every parameter except those under the top-level keys `frozen`, which get zero
  updates and no optimizer state (fixed pretrained weights, fixed random projections)."""
  if not frozen:
    return tx

  def labels(params):
    return {k: jax.tree.map(lambda _, k=k: "frozen" if k in frozen else "train", v)
            for k, v in params.items()}
  return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


_INJECT_STATES = tuple(t for t in (getattr(optax, "InjectHyperparamsState", None),
                                   getattr(optax, "InjectStatefulHyperparamsState", None)) if t)


def _is_inject_state(x):
  return isinstance(x, _INJECT_STATES)


def set_hyperparams(opt_state, **values):
  """Returns `opt_state` with injected hyper-parameters (lr_scale, weight_decay) replaced."""
  def replace(x):
    if _is_inject_state(x):
      hp = dict(x.hyperparams)
      for k, v in values.items():
        if k not in hp:
          raise KeyError(f"optimizer has no injected hyper-parameter {k!r}")
        hp[k] = jnp.asarray(v, jnp.asarray(hp[k]).dtype)
      return x._replace(hyperparams=hp)
    return x
  if not any(_is_inject_state(x) for x in jax.tree.leaves(opt_state, is_leaf=_is_inject_state)):
    raise ValueError("no injected hyper-parameters in this optimizer state")
  return jax.tree.map(replace, opt_state, is_leaf=_is_inject_state)
