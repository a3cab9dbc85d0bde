"""Damage masks for image repair (True / 1 = missing), generated inside compiled code so
training draws fresh masks on device every step, and evaluation draws fixed ones from a seed.

Kinds: the four halves, a centre box (half the side), random boxes, strokes (thick line
segments), random pixels (half of them)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

KINDS = ("bottom", "top", "left", "right", "centre", "boxes", "strokes", "pixels")


def _grid(h, w):
  return jnp.arange(h, dtype=jnp.float32)[:, None], jnp.arange(w, dtype=jnp.float32)[None, :]


def _boxes(key, h, w, count=3):
  k1, k2 = jax.random.split(key)
  size = jax.random.uniform(k1, (count, 2), minval=0.25, maxval=0.5) * jnp.array([h, w])
  corner = jax.random.uniform(k2, (count, 2)) * (jnp.array([h, w]) - size)
  y, x = _grid(h, w)
  inside = ((y[None] >= corner[:, :1, None]) & (y[None] < corner[:, :1, None] + size[:, :1, None]) &
            (x[None] >= corner[:, 1:, None]) & (x[None] < corner[:, 1:, None] + size[:, 1:, None]))
  return inside.any(0)


def _strokes(key, h, w, count=2):
  ends = jax.random.uniform(key, (count, 2, 2)) * jnp.array([h - 1, w - 1])
  y, x = _grid(h, w)
  p = jnp.stack(jnp.broadcast_arrays(y, x), -1)                    # [h, w, 2]
  a, b = ends[:, None, None, 0], ends[:, None, None, 1]             # [count, 1, 1, 2]
  t = jnp.clip(jnp.sum((p - a) * (b - a), -1) / jnp.maximum(jnp.sum((b - a) ** 2, -1), 1e-6), 0, 1)
  dist = jnp.linalg.norm(p - (a + t[..., None] * (b - a)), axis=-1)
  return (dist <= max(h, w) / 12 + 0.5).any(0)


def one(key, kind, h: int, w: int):
  """A bool [h, w] mask of kind index `kind` (traced: a switch over KINDS)."""
  y, x = _grid(h, w)
  full = jnp.zeros((h, w), bool)
  fixed = jnp.stack([full | (y >= h / 2), full | (y < h / 2), full | (x < w / 2), full | (x >= w / 2),
                     full | ((jnp.abs(y - (h - 1) / 2) < h / 4) & (jnp.abs(x - (w - 1) / 2) < w / 4))])
  k1, k2, k3 = jax.random.split(key, 3)
  drawn = jnp.stack([_boxes(k1, h, w), _strokes(k2, h, w), jax.random.bernoulli(k3, 0.5, (h, w))])
  return jnp.concatenate([fixed, drawn])[kind]


@functools.partial(jax.jit, static_argnums=(2, 3))
def sample(key, kinds, h: int, w: int):
  """bool [N, h, w]: mask i of kind index kinds[i] (int [N])."""
  keys = jax.random.split(key, kinds.shape[0])
  return jax.vmap(lambda k, c: one(k, c, h, w))(keys, kinds)


def of_kind(kind: str, n: int, h: int, w: int, seed: int = 0):
  """n masks of one named kind, reproducible from `seed` (evaluation)."""
  kinds = jnp.full((n,), KINDS.index(kind), jnp.int32)
  return sample(jax.random.key(seed), kinds, h, w)
