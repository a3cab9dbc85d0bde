"""Projecting real images into a StyleGAN-class generator (Karras et al. 2020, StyleGAN2-ADA's
projector): per image one w (shared by every layer) and the per-layer noise maps, found by
Adam from the mean w with a learning-rate ramp (warm-up, cosine ramp-down), a decaying noise
added to w early on (exploration), a pixel loss plus a perceptual loss in a feature network,
and the projector's noise regulariser (noise maps must not hide the image: their
autocorrelation at every scale is pushed to zero, and they are renormalised every step).
All images of a batch are optimised together by one jitted `lax.scan`; a `visible` mask
restricts the pixel loss to known pixels, and the perceptual loss to the pictures with their
unknown pixels grey (image repair)."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax import lax


@dataclasses.dataclass(frozen=True)
class Settings:
  steps: int = 300
  lr: float = 0.1
  lr_rampup: float = 0.05         # fraction of the steps warming the learning rate up
  lr_rampdown: float = 0.25       # fraction ramped down (cosine) at the end
  initial_noise: float = 0.05     # noise on w at the start, x w_std, decaying to 0 ...
  noise_ramp: float = 0.75        # ... over this fraction of the steps
  noise_reg: float = 1e5          # weight of the noise-map autocorrelation penalty
  pixel_weight: float = 1.0       # mean squared error in [-1, 1] pixels
  feature_weight: float = 1.0     # squared distance of the feature vectors / their dimension
  optimize_noise: bool = True


def noise_regularizer(noise) -> jax.Array:
  """Per image [N]: sum over maps and scales (down to 8x8) of the squared mean products of
  each map with itself shifted by one pixel in each direction."""
  reg = 0.0
  for v in noise:
    while True:
      reg = reg + (jnp.mean(v * jnp.roll(v, 1, axis=2), (1, 2, 3)) ** 2
                   + jnp.mean(v * jnp.roll(v, 1, axis=1), (1, 2, 3)) ** 2)
      if v.shape[1] <= 8:
        break
      n, h, w, c = v.shape
      v = v.reshape(n, h // 2, 2, w // 2, 2, c).mean((2, 4))
  return reg


def _normalized(noise):
  return [(v - v.mean((1, 2, 3), keepdims=True)) / (v.std((1, 2, 3), keepdims=True) + 1e-8)
          for v in noise]


def learning_rate(s: Settings, step):
  t = step / max(s.steps, 1)
  ramp = jnp.minimum(1.0, (1.0 - t) / s.lr_rampdown)
  ramp = 0.5 - 0.5 * jnp.cos(ramp * math.pi)
  return s.lr * ramp * jnp.minimum(1.0, t / max(s.lr_rampup, 1e-8))


def project(synthesize: Callable, features: Callable, targets, w_avg, w_std, noise0,
            s: Settings, key, visible=None):
  """targets [N, H, W, C] in [-1, 1]; synthesize(w [N, w_dim], noise) -> images [N, H, W, C];
  features(images) -> [N, D]; w_avg [w_dim], w_std (scalar); noise0: the starting noise
  maps; visible [N, H, W, 1] (1 = known pixel) or None. Returns (w [N, w_dim], noise,
  images [N, H, W, C], final losses {name: [N]})."""
  n = targets.shape[0]
  vis = jnp.ones(targets.shape[:3] + (1,), targets.dtype) if visible is None else visible
  count = jnp.maximum(vis.sum((1, 2, 3)), 1.0) * targets.shape[-1]
  f_target = features(vis * targets) if s.feature_weight else None   # the hole grey in both

  def losses(w, noise):
    img = synthesize(w, noise)
    out = {"pixel": jnp.sum(vis * (img - targets) ** 2, (1, 2, 3)) / count}
    total = s.pixel_weight * out["pixel"]
    if s.feature_weight:
      out["feature"] = jnp.mean((features(vis * img) - f_target) ** 2, -1)
      total = total + s.feature_weight * out["feature"]
    if s.optimize_noise:
      out["noise_reg"] = noise_regularizer(noise)
      total = total + s.noise_reg * out["noise_reg"]
    return total, (out, img)

  tx = optax.inject_hyperparams(optax.adam)(learning_rate=s.lr, b1=0.9, b2=0.999)
  w0 = jnp.broadcast_to(w_avg, (n, w_avg.shape[-1])).astype(jnp.float32)
  params = {"w": w0, "noise": _normalized(noise0)}

  def body(carry, step):
    p, opt = carry
    t = step / max(s.steps, 1)
    scale = w_std * s.initial_noise * jnp.maximum(0.0, 1.0 - t / s.noise_ramp) ** 2
    jitter = scale * jax.random.normal(jax.random.fold_in(key, step), p["w"].shape)
    grads = jax.grad(lambda q: losses(q["w"] + jitter, q["noise"])[0].sum())(p)
    if not s.optimize_noise:
      grads["noise"] = jax.tree.map(jnp.zeros_like, grads["noise"])
    opt.hyperparams["learning_rate"] = learning_rate(s, step)
    upd, opt = tx.update(grads, opt, p)
    p = optax.apply_updates(p, upd)
    return ({"w": p["w"], "noise": _normalized(p["noise"])}, opt), None

  (p, _), _ = lax.scan(body, (params, tx.init(params)), jnp.arange(s.steps))
  _, (out, img) = losses(p["w"], p["noise"])
  return p["w"], p["noise"], img, out
