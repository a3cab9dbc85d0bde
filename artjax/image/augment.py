"""DiffAugment (Zhao et al., 2020): differentiable augmentations applied identically
(same policy, fresh randomness) to real and fake images, in both the discriminator and
the generator updates, so the discriminator cannot memorise the few real images.

Policies (comma-separated): "color" (brightness, saturation, contrast), "translation"
(shift by up to `ratio` of the size, zero fill), "cutout" (a zeroed square of
`ratio` of the size). Images are in the model's pixel range; zero fill uses its midpoint
as the DiffAugment reference does for [-1, 1] images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

POLICIES = ("color", "translation", "cutout")


def validate(policy: str) -> None:
  from artjax import ConfigError
  for p in filter(None, policy.split(",")):
    if p not in POLICIES:
      raise ConfigError(f"unknown DiffAugment policy {p!r}; choose from {POLICIES}")


def _color(key, x):
  k1, k2, k3 = jax.random.split(key, 3)
  b = x.shape[0]
  x = x + (jax.random.uniform(k1, (b, 1, 1, 1)) - 0.5)
  if x.shape[-1] > 1:
    mean = x.mean(axis=-1, keepdims=True)
    x = (x - mean) * (jax.random.uniform(k2, (b, 1, 1, 1)) * 2) + mean
  mean = x.mean(axis=(1, 2, 3), keepdims=True)
  return (x - mean) * (jax.random.uniform(k3, (b, 1, 1, 1)) + 0.5) + mean


def _shift_matrices(key, b, n, s):
  """[B, n, n] one-hot matrices M with (M @ v)[i] = v[i + d] (zero outside), d in [-s, s]."""
  d = jax.random.randint(key, (b, 1, 1), -s, s + 1)
  i = jnp.arange(n)[None, :, None]
  j = jnp.arange(n)[None, None, :]
  return (j == i + d).astype(jnp.float32)


def _translation(key, x, ratio=0.125):
  """Integer shifts with zero fill, as two batched one-hot matmuls (fast on every backend,
  differentiable in x)."""
  b, h, w, _ = x.shape
  sh, sw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
  ky, kx = jax.random.split(key)
  my = _shift_matrices(ky, b, h, sh).astype(x.dtype)
  mx = _shift_matrices(kx, b, w, sw).astype(x.dtype)
  return jnp.einsum("bij,bjkc,blk->bilc", my, x, mx)


def _cutout(key, x, ratio=0.5):
  b, h, w, _ = x.shape
  ch, cw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
  ky, kx = jax.random.split(key)
  y0 = jax.random.randint(ky, (b, 1, 1), 0, h + (1 - ch % 2)) - ch // 2
  x0 = jax.random.randint(kx, (b, 1, 1), 0, w + (1 - cw % 2)) - cw // 2
  yy = jnp.arange(h)[None, :, None]
  xx = jnp.arange(w)[None, None, :]
  inside = (yy >= y0) & (yy < y0 + ch) & (xx >= x0) & (xx < x0 + cw)
  return x * (~inside)[..., None].astype(x.dtype)


def diff_augment(key, x, policy: str, pixel_range=(-1.0, 1.0)):
  """Applies `policy` to a batch x [B,H,W,C] (differentiable in x)."""
  if not policy:
    return x
  lo, hi = pixel_range
  mid, half = (lo + hi) / 2, (hi - lo) / 2
  x = (x - mid) / half   # to [-1, 1] so zero fill and colour jitter match the reference
  for i, p in enumerate(filter(None, policy.split(","))):
    k = jax.random.fold_in(key, i)
    x = {"color": _color, "translation": _translation, "cutout": _cutout}[p](k, x)
  return x * half + mid


def random_shift(key, x, pixels: int, mode: str = "constant"):
  """Each image of x [B, H, W, C] moved by its own random integer offset of up to `pixels` in
  each direction, the border filled by `mode` (jnp.pad: constant = zeros, edge = repeated).
  Shift several images together by concatenating them on channels first."""
  if not pixels:
    return x
  b, h, w, c = x.shape
  pad = jnp.pad(x, ((0, 0), (pixels, pixels), (pixels, pixels), (0, 0)), mode=mode)
  dy, dx = jax.random.randint(key, (2, b), 0, 2 * pixels + 1)
  return jax.vmap(lambda im, y, z: jax.lax.dynamic_slice(im, (y, z, 0), (h, w, c)))(pad, dy, dx)
