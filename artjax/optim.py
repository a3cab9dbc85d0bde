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
import optax

from artjax import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
_DECAYED_LEAVES = ("kernel", "embedding")


def decay_mask(params):
  """True for leaves that get weight decay: dense/conv kernels and embeddings."""
  def is_decayed(path, _):
    last = path[-1]
    name = getattr(last, "key", getattr(last, "name", str(last)))
    return str(name) in _DECAYED_LEAVES
  return jax.tree_util.tree_map_with_path(is_decayed, params)


def learning_rate_schedule(cfg, total_steps: int):
  if cfg.schedule == "constant":
    if cfg.warmup_steps:
      return optax.linear_schedule(0.0, cfg.lr, cfg.warmup_steps)
    return cfg.lr
  if cfg.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0, cfg.lr, warmup_steps=max(cfg.warmup_steps, 0),
        decay_steps=max(total_steps, cfg.warmup_steps + 1), end_value=cfg.lr * cfg.get("end_lr_frac", 0.0))
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
  """Builds the optax chain: clip -> base -> masked decoupled decay -> -lr, (accumulated)."""
  validate(cfg)
  lr = learning_rate_schedule(cfg, total_steps // max(cfg.grad_accum, 1))
  parts = []
  if cfg.clip_norm:
    parts.append(optax.clip_by_global_norm(cfg.clip_norm))
  if cfg.name in ("adam", "adamw"):
    parts.append(optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=cfg.get("eps", 1e-8)))
  elif cfg.b1:
    parts.append(optax.trace(decay=cfg.b1))
  # Plain `adam` with weight_decay>0 still decays decoupled (AdamW): coupled L2 is not offered.
  if cfg.weight_decay:
    parts.append(optax.add_decayed_weights(cfg.weight_decay, mask=decay_mask))
  parts.append(optax.scale_by_learning_rate(lr))
  tx = optax.chain(*parts)
  if cfg.grad_accum > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=cfg.grad_accum)
  return tx
