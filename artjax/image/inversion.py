"""GAN inversion for image repair (Yeh et al. 2017, "Semantic image inpainting with deep
generative models"): find the latent (and, for a class-conditional generator, the class) whose
generated image matches the visible pixels, with the discriminator as a realism prior; fill the
missing pixels from it. Every image x every class x every restart is one row of one batch; the
whole search is one jitted `lax.scan` of Adam steps; the best candidate per image is kept."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax import lax


@dataclasses.dataclass(frozen=True)
class Settings:
  restarts: int = 4           # random latent starts per image (and class)
  steps: int = 150            # Adam steps
  lr: float = 0.05
  realism: float = 0.003      # weight of the discriminator's "fake" score (softplus(-logit))
  latent_prior: float = 0.001  # weight of ||z||^2 / dim (keeps z where G was trained)


def invert(generate: Callable, discriminate: Callable, images, visible, num_classes: int,
           latent_dim: int, s: Settings, key):
  """images [N, H, W, C] in G's pixel space, visible [N, H, W, 1] (1 = known pixel).

  generate(z [M, D], labels [M] | None) -> [M, H, W, C]; discriminate(x, labels) -> [M].
  num_classes = 0 for an unconditional G. Returns (filled images [N, H, W, C] with the visible
  pixels exactly as given, the best candidate's class [N] (0 if unconditional), the best
  candidate's visible-pixel MSE [N])."""
  n = images.shape[0]
  k = max(num_classes, 1)
  r = s.restarts
  labels = jnp.tile(jnp.repeat(jnp.arange(k, dtype=jnp.int32), r), n) if num_classes else None
  z0 = jax.random.normal(key, (n * k * r, latent_dim))
  target = jnp.repeat(images, k * r, axis=0)
  vis = jnp.repeat(visible, k * r, axis=0)
  count = jnp.maximum(vis.sum((1, 2, 3)), 1.0) * images.shape[-1]

  def per_candidate(z):
    g = generate(z, labels)
    rec = jnp.sum(vis * (g - target) ** 2, (1, 2, 3)) / count
    fake = jax.nn.softplus(-discriminate(g, labels))
    return rec, rec + s.realism * fake + s.latent_prior * jnp.mean(z ** 2, -1), g

  tx = optax.adam(s.lr)

  def body(carry, _):
    z, opt = carry
    grad = jax.grad(lambda z_: per_candidate(z_)[1].sum())(z)
    upd, opt = tx.update(grad, opt, z)
    return (optax.apply_updates(z, upd), opt), None

  (z, _), _ = lax.scan(body, (z0, tx.init(z0)), None, length=s.steps)
  rec, total, g = per_candidate(z)
  best = jnp.argmin(total.reshape(n, k * r), axis=1)
  pick = jnp.arange(n) * k * r + best
  filled = visible * images + (1.0 - visible) * g[pick]
  cls = best // r if num_classes else jnp.zeros((n,), jnp.int32)
  return filled, cls.astype(jnp.int32), rec[pick]
