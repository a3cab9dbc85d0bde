"""Paths through a generator's latent space for animation (pure, jittable): keyframe latents
joined by spherical (slerp), linear or cubic (Catmull-Rom, C1-smooth, as StyleGAN3's
gen_video interpolates W keyframes) interpolation, looping back to the first keyframe, and
class-weight paths for class morphs. Frame f of F sits at keyframe position f * K / F, so a
looping walk's last frame is one step before its first."""

from __future__ import annotations

import jax.numpy as jnp

INTERPOLATIONS = ("slerp", "lerp", "cubic")


def _positions(num_frames: int, num_keys: int, frames=None):
  """(keyframe index, fraction) of each frame (`frames`: indices, default all)."""
  f = jnp.arange(num_frames) if frames is None else jnp.asarray(frames)
  t = f.astype(jnp.float32) * (num_keys / num_frames)
  i = jnp.floor(t).astype(jnp.int32)
  return i % num_keys, t - i


def slerp(a, b, t):
  """Spherical interpolation of rows of a and b ([..., D]) by t ([...]); radius interpolated
  linearly (Gaussian latents keep their typical norm)."""
  na, nb = jnp.linalg.norm(a, axis=-1, keepdims=True), jnp.linalg.norm(b, axis=-1, keepdims=True)
  ua, ub = a / jnp.maximum(na, 1e-8), b / jnp.maximum(nb, 1e-8)
  cos = jnp.clip(jnp.sum(ua * ub, -1, keepdims=True), -1.0, 1.0)
  omega = jnp.arccos(cos)
  t = t[..., None]
  so = jnp.sin(omega)
  small = so < 1e-4
  wa = jnp.where(small, 1.0 - t, jnp.sin((1.0 - t) * omega) / jnp.where(small, 1.0, so))
  wb = jnp.where(small, t, jnp.sin(t * omega) / jnp.where(small, 1.0, so))
  return (wa * ua + wb * ub) * ((1.0 - t) * na + t * nb)


def walk(keys, num_frames: int, interp: str = "slerp", frames=None):
  """keys [K, D] -> [num_frames, D] (or [len(frames), D]: only those frames), a closed loop
  through every keyframe in order."""
  k = keys.shape[0]
  i, t = _positions(num_frames, k, frames)
  a, b = keys[i], keys[(i + 1) % k]
  if interp == "lerp":
    return a + t[:, None] * (b - a)
  if interp == "slerp":
    return slerp(a, b, t)
  p0, p3 = keys[(i - 1) % k], keys[(i + 2) % k]           # Catmull-Rom through a and b
  t = t[:, None]
  return 0.5 * ((2 * a) + (-p0 + b) * t + (2 * p0 - 5 * a + 4 * b - p3) * t ** 2
                + (-p0 + 3 * a - 3 * b + p3) * t ** 3)


def class_path(classes, num_classes: int, num_frames: int, frames=None):
  """Class weights [num_frames, num_classes] morphing through `classes` in order and back
  to the first (smoothstep between neighbours: a short rest at each class)."""
  c = jnp.asarray(classes, jnp.int32)
  i, t = _positions(num_frames, c.shape[0], frames)
  t = t * t * (3.0 - 2.0 * t)
  one = jnp.eye(num_classes, dtype=jnp.float32)
  return (1.0 - t)[:, None] * one[c[i]] + t[:, None] * one[c[(i + 1) % c.shape[0]]]
