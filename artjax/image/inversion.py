"""GAN inversion for image repair (Yeh et al. 2017, "Semantic image inpainting with deep
generative models"): find the latent (and, for a class-conditional generator, the class) whose
generated image matches the visible pixels, with the discriminator as a realism prior; fill the
missing pixels from it. Screening (forward passes only) ranks random latents of every class
per image; the best `restarts` latents of the `classes` best-matching classes per image are
one batch, optimised by one jitted `lax.scan` of Adam steps; the best candidate is kept.
With `Settings.perceptual` the visible pixels are also matched in a pretrained ImageNet
network's features (`artjax.image.perceptual`: the hole is grey in both pictures)."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax import lax


@dataclasses.dataclass(frozen=True)
class Settings:
  restarts: int = 4           # latent starts per image (and class) optimised
  classes: int = 2            # conditional G: optimise only the classes whose screened starts
                              # match best (0 = every class)
  screen: int = 1024          # bank of random latents per class shared by all images; the best
                              # `restarts` by visible-pixel error start the optimisation
  screen_temp: float = 0.01   # temperature of the screened class evidence (per-pixel MSE units)
  steps: int = 200            # Adam steps
  lr: float = 0.05
  realism: float = 0.01       # weight of the discriminator's "fake" score (softplus(-logit))
  latent_prior: float = 0.01   # weight of ||z||^2 / dim (keeps z where G was trained)
  blend_iters: int = 100      # Poisson blending of the fill into the visible pixels (0 = off)
  perceptual: float = 0.0     # weight of the LPIPS-style distance in `feature_net`'s stages
                              # (0 = pixels only)
  feature_net: str = "lite0"  # artjax.image.perceptual: lite0 | lite1 | lite2
  feature_size: int = 0       # pictures are resized to this for the feature network (0 =
                              # their own size, at least perceptual.MIN_SIZE)


def invert(generate: Callable, discriminate: Callable, images, visible, num_classes: int,
           latent_dim: int, s: Settings, key):
  """images [N, H, W, C] in G's pixel space, visible [N, H, W, 1] (1 = known pixel).

  generate(z [M, D], labels [M] | None) -> [M, H, W, C]; discriminate(x, labels) -> [M].
  num_classes = 0 for an unconditional G. Returns (filled images [N, H, W, C] with the visible
  pixels exactly as given, the best candidate's class [N] (0 if unconditional), the best
  candidate's visible-pixel MSE [N])."""
  n, r = images.shape[0], s.restarts
  z0, labels, k = _screened(generate, images, visible, num_classes, latent_dim, s, key)
  target = jnp.repeat(images, k * r, axis=0)
  vis = jnp.repeat(visible, k * r, axis=0)
  count = jnp.maximum(vis.sum((1, 2, 3)), 1.0) * images.shape[-1]

  seen = _perceptual(s, images, visible, k * r)

  def per_candidate(z):
    g = generate(z, labels)
    rec = jnp.sum(vis * (g - target) ** 2, (1, 2, 3)) / count
    fake = jax.nn.softplus(-discriminate(g, labels))
    prior = s.realism * fake + s.latent_prior * jnp.mean(z ** 2, -1)
    return rec, rec + prior + (s.perceptual * seen(vis * g) if seen else 0.0), g

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
  filled = poisson_blend(g[pick], images, visible, s.blend_iters)
  cls = labels[pick] if num_classes else jnp.zeros((n,), jnp.int32)
  return filled, cls.astype(jnp.int32), rec[pick]


def _perceptual(s: Settings, images, visible, copies: int):
  """None, or the perceptual distance of masked candidates [N*copies, H, W, C] to their
  image's visible pixels (the target's features computed once)."""
  if not s.perceptual:
    return None
  from artjax.image import perceptual
  f = perceptual.features(s.feature_net, s.feature_size)
  target = jnp.repeat(f(visible * images), copies, axis=0)
  return lambda masked: jnp.mean((f(masked) - target) ** 2, -1)


def _screened(generate, images, visible, num_classes, latent_dim, s: Settings, key):
  """Starting latents [N*k*restarts, D], their labels (None if unconditional) and k, the
  classes kept per image. One bank of `screen` random latents per class is shared by every
  image (forward passes only, one matrix of visible-pixel errors [N, classes, screen]); each
  image starts from the `restarts` bank latents of a class whose images best match its visible
  pixels; with `s.classes`, only the classes with the highest screened evidence are kept."""
  n, p, r = images.shape[0], max(s.screen, s.restarts), s.restarts
  k = max(num_classes, 1)
  z = jax.random.normal(key, (k, p, latent_dim))
  labels = jnp.broadcast_to(jnp.arange(k, dtype=jnp.int32)[:, None], (k, p))
  g = generate(z.reshape(-1, latent_dim), labels.reshape(-1) if num_classes else None)
  g = g.reshape(k * p, -1)
  v = jnp.broadcast_to(visible, images.shape).reshape(n, -1)
  xv = images.reshape(n, -1) * v
  err = (jnp.sum(xv * xv, -1)[:, None] - 2.0 * xv @ g.T + v @ (g * g).T).reshape(n, k, p)
  best = jnp.argsort(err, axis=-1)[..., :r]                                   # [n, k, r]
  z = z[jnp.arange(k)[None, :, None], best]                                   # [n, k, r, D]
  labels = jnp.broadcast_to(jnp.arange(k, dtype=jnp.int32)[None, :, None], (n, k, r))
  if num_classes and 0 < s.classes < k:
    count = jnp.maximum(v.sum(-1), 1.0)[:, None, None] * images.shape[-1]
    evidence = jax.nn.logsumexp(-err / (count * s.screen_temp), -1)           # [n, k]
    top = jnp.argsort(-evidence, axis=-1)[:, :s.classes]                      # [n, classes]
    z = jnp.take_along_axis(z, top[:, :, None, None], axis=1)
    labels = jnp.take_along_axis(labels, top[:, :, None], axis=1)
    k = s.classes
  return z.reshape(-1, latent_dim), (labels.reshape(-1) if num_classes else None), k


def poisson_blend(fill, images, visible, iters: int):
  """Yeh et al.'s blending step: inside the hole keep the fill's gradients, at its border meet
  the visible pixels -- the fill plus the visible residual (images - fill) diffused into the
  hole by `iters` Jacobi steps of Laplace's equation. Visible pixels are returned exactly."""
  hole = 1.0 - visible
  resid = visible * (images - fill)

  def step(r, _):
    pad = jnp.pad(r, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    avg = (pad[:, :-2, 1:-1] + pad[:, 2:, 1:-1] + pad[:, 1:-1, :-2] + pad[:, 1:-1, 2:]) / 4.0
    return visible * resid + hole * avg, None

  r, _ = lax.scan(step, resid, None, length=iters) if iters else (resid, None)
  return visible * images + hole * (fill + r)
