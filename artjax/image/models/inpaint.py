"""A context-encoder style inpainting network (Pathak et al. 2016) for small images: the
damaged image (missing pixels zeroed) and its mask in, the whole image out (tanh, [-1, 1]).
An MLP with residual hidden layers: at 8x8 every output pixel sees every input pixel."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from artjax.nn.precision import Linear


class MLPInpainter(nnx.Module):
  def __init__(self, image_shape, *, width=512, depth=3, rngs: nnx.Rngs):
    self.image_shape = tuple(image_shape)
    d = math.prod(image_shape)
    self.inp = Linear(2 * d, width, rngs=rngs)
    self.hidden = nnx.List([Linear(width, width, rngs=rngs) for _ in range(depth - 1)])
    self.norms = nnx.List([nnx.LayerNorm(width, rngs=rngs) for _ in range(depth - 1)])
    self.out = Linear(width, d, rngs=rngs)

  def __call__(self, damaged, missing):
    """damaged [B, H, W, C] in [-1, 1] (missing pixels 0), missing [B, H, W, 1] float."""
    b = damaged.shape[0]
    m = jnp.broadcast_to(missing, damaged.shape)
    h = jax.nn.gelu(self.inp(jnp.concatenate([damaged.reshape(b, -1), m.reshape(b, -1)], -1)))
    for layer, norm in zip(self.hidden, self.norms):
      h = h + jax.nn.gelu(layer(norm(h)))
    return jnp.tanh(self.out(h)).reshape((b, *self.image_shape))
