"""A small image classifier: the evaluator network behind FDD / IS / class shares."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from artjax.nn.precision import Linear


class MLPClassifier(nnx.Module):
  """Flatten -> [Dense, GELU, LayerNorm] x depth -> logits. `features` = last hidden layer."""

  def __init__(self, image_shape, num_classes, *, width=256, depth=2, dropout=0.1,
               rngs: nnx.Rngs):
    d_in = math.prod(image_shape)
    self.layers = nnx.List([Linear(d_in if i == 0 else width, width, rngs=rngs)
                            for i in range(depth)])
    self.norms = nnx.List([nnx.LayerNorm(width, rngs=rngs) for _ in range(depth)])
    self.dropout_rate = float(dropout)
    self.out = Linear(width, num_classes, rngs=rngs)

  def features(self, x, *, train=False, rng=None):
    h = x.reshape((x.shape[0], -1))
    for layer, norm in zip(self.layers, self.norms):
      h = norm(jax.nn.gelu(layer(h)))
      if train and self.dropout_rate > 0:
        keep = jax.random.bernoulli(rng, 1 - self.dropout_rate, h.shape)
        rng = jax.random.fold_in(rng, 1)
        h = jnp.where(keep, h / (1 - self.dropout_rate), 0.0)
    return h

  def __call__(self, x, *, train=False, rng=None):
    return self.out(self.features(x, train=train, rng=rng))
