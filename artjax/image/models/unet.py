"""The pix2pix pair (Isola et al., CVPR 2017) for paired image-to-image translation: a U-Net
generator (4x4 stride-2 convolutions down to 2x2, resize-convolutions back up, each level's
encoder features concatenated into the decoder) and a PatchGAN discriminator that judges
overlapping patches of (input, output) pairs. Images are float [B, H, W, C] in [-1, 1];
any power-of-two side from 8. Convolutions are `transform.Conv` (`artjax.nn.conv`: canonical
forward and backward convolutions, fast inside the loop's scan on XLA:CPU)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from artjax.image.models.transform import Conv


def _lrelu(x):
  return jax.nn.leaky_relu(x, 0.2)


def _zero_pad(x, p):
  return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))


class Down(nnx.Module):
  """4x4 stride-2 convolution (zero padding 1), instance norm unless `norm=False`, LeakyReLU."""

  def __init__(self, cin, cout, *, norm=True, rngs):
    self.conv = Conv(cin, cout, 4, 2, rngs=rngs)
    self.norm = nnx.InstanceNorm(cout, rngs=rngs) if norm else None

  def __call__(self, x):
    y = self.conv(_zero_pad(x, 1))
    return _lrelu(self.norm(y) if self.norm is not None else y)


class Up(nnx.Module):
  """Nearest x2 then a 3x3 convolution (no checkerboard), instance norm, ReLU."""

  def __init__(self, cin, cout, *, rngs):
    self.conv = Conv(cin, cout, 3, rngs=rngs)
    self.norm = nnx.InstanceNorm(cout, rngs=rngs)

  def __call__(self, x):
    b, h, w, c = x.shape
    x = jax.image.resize(x, (b, 2 * h, 2 * w, c), "nearest")
    return jax.nn.relu(self.norm(self.conv(_zero_pad(x, 1))))


def widths(resolution: int, width: int, max_width: int) -> list:
  """Encoder channels per level, from `resolution`/2 down to 2x2 (doubling, capped)."""
  levels = max(1, resolution.bit_length() - 2)          # 32 px: 32->16->8->4->2, 4 levels
  return [min(width * 2 ** i, max_width) for i in range(levels)]


class UNet(nnx.Module):
  """pix2pix's U-Net: image in, image out (tanh); a skip connection at every level."""

  def __init__(self, image_shape, *, width=32, max_width=256, rngs):
    h, _, c = image_shape
    ws = widths(h, width, max_width)
    self.down = nnx.List([Down(c if i == 0 else ws[i - 1], w, norm=0 < i < len(ws) - 1,
                               rngs=rngs) for i, w in enumerate(ws)])
    # decoder level i gets the level below (plus its skip) and returns ws[i - 1] channels
    ups, cin = [], ws[-1]
    for i in range(len(ws) - 1, 0, -1):
      ups.append(Up(cin, ws[i - 1], rngs=rngs))
      cin = 2 * ws[i - 1]
    self.up = nnx.List(ups)
    self.final = Up(cin, width, rngs=rngs)
    self.out = Conv(width, c, 3, rngs=rngs)

  def __call__(self, x):
    skips = []
    for layer in self.down:
      x = layer(x)
      skips.append(x)
    for layer, skip in zip(self.up, reversed(skips[:-1])):
      x = jnp.concatenate([layer(x), skip], -1)
    x = self.final(x)
    return jnp.tanh(self.out(_zero_pad(x, 1)))


class PatchDiscriminator(nnx.Module):
  """PatchGAN: (input, output) concatenated on channels; two stride-2 levels, one stride-1
  level and a 1-channel head: a logit per overlapping patch ([B, H/4, W/4])."""

  def __init__(self, image_shape, *, width=32, rngs):
    c = 2 * image_shape[-1]
    self.a = Down(c, width, norm=False, rngs=rngs)
    self.b = Down(width, 2 * width, rngs=rngs)
    self.c = Conv(2 * width, 4 * width, 3, rngs=rngs)
    self.norm = nnx.InstanceNorm(4 * width, rngs=rngs)
    self.head = Conv(4 * width, 1, 3, rngs=rngs)

  def __call__(self, source, image):
    x = self.b(self.a(jnp.concatenate([source, image], -1)))
    x = _lrelu(self.norm(self.c(_zero_pad(x, 1))))
    return self.head(_zero_pad(x, 1))[..., 0]
