"""The image-transformation network of fast style transfer (Johnson, Alahi and Fei-Fei 2016):
two strided downsampling convolutions, residual blocks, and resize-convolution upsampling
(nearest-neighbour x2 then a convolution: no checkerboard artefacts, Odena et al. 2016), with
instance normalisation (Ulyanov et al. 2016). Fully convolutional: any input size whose sides
are multiples of 4. Images in and out are float [B, H, W, 3] in [0, 1]."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from artjax.nn.conv import conv2d


def _reflect(x, k):
  p = k // 2
  return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")


class Conv(nnx.Module):
  """A VALID convolution (the caller pads), kernel [k, k, cin, cout] + bias. Training runs
  `artjax.nn.conv.conv2d` (canonical forward and backward convolutions: fast on XLA:CPU inside
  the loop's scan too; it replaced a patches x matmul formulation that was 1.1-1.4x slower,
  docs/performance.md); `blocked=True` runs the forward pass as channel-blocked XLA
  convolutions (inference at 256-512 px, where XLA:CPU is faster on 16-channel blocks)."""

  def __init__(self, cin, cout, k, stride=1, *, rngs):
    self.k, self.stride = k, stride
    init = nnx.initializers.lecun_normal()
    self.kernel = nnx.Param(init(rngs.params(), (k, k, cin, cout)))
    self.bias = nnx.Param(jnp.zeros((cout,)))

  def __call__(self, x, blocked=False):
    if blocked:
      return _blocked_conv(x, self.kernel[...], self.stride) + self.bias[...]
    return conv2d(x, self.kernel[...], self.stride, "VALID") + self.bias[...]


BLOCK = 16


def _blocked_conv(x, kernel, stride):
  """A VALID NHWC convolution as a sum (over input channels) and concatenation (over output
  channels) of convolutions at most BLOCK channels wide: XLA:CPU 0.10 runs a 3x3 convolution
  with 16 input and 16 output channels ~80 GFLOP/s but 32 -> 16 at ~10 (measured at 256 px:
  72 ms as one, 8 ms as two 16-channel halves); the whole network's forward pass runs 1.7x
  faster at 256 px, 1.3x at 512 (benchmarks/style.py --feedforward). The same result up to
  rounding."""
  cin, cout = kernel.shape[2], kernel.shape[3]
  conv = lambda a, k: jax.lax.conv_general_dilated(a, k, (stride, stride), "VALID",
                                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  outs = []
  for o in range(0, cout, BLOCK):
    parts = [conv(x[..., i:i + BLOCK], kernel[:, :, i:i + BLOCK, o:o + BLOCK]) for i in range(0, cin, BLOCK)]
    outs.append(sum(parts[1:], parts[0]))
  return outs[0] if len(outs) == 1 else jnp.concatenate(outs, -1)


class ConvNorm(nnx.Module):
  """Reflect-padded convolution + instance norm (+ ReLU)."""

  def __init__(self, cin, cout, k, stride=1, relu=True, *, rngs):
    self.k, self.relu = k, relu
    self.conv = Conv(cin, cout, k, stride, rngs=rngs)
    self.norm = nnx.InstanceNorm(cout, rngs=rngs)

  def __call__(self, x, blocked=False):
    y = self.norm(self.conv(_reflect(x, self.k), blocked))
    return jax.nn.relu(y) if self.relu else y


class Residual(nnx.Module):
  def __init__(self, c, *, rngs):
    self.a = ConvNorm(c, c, 3, rngs=rngs)
    self.b = ConvNorm(c, c, 3, relu=False, rngs=rngs)

  def __call__(self, x, blocked=False):
    return x + self.b(self.a(x, blocked), blocked)


class TransformNet(nnx.Module):
  def __init__(self, width=32, blocks=5, edge_kernel=9, *, rngs):
    w = width
    self.down = nnx.List([ConvNorm(3, w, edge_kernel, rngs=rngs), ConvNorm(w, 2 * w, 3, 2, rngs=rngs),
                          ConvNorm(2 * w, 4 * w, 3, 2, rngs=rngs)])
    self.res = nnx.List([Residual(4 * w, rngs=rngs) for _ in range(blocks)])
    self.up = nnx.List([ConvNorm(4 * w, 2 * w, 3, rngs=rngs), ConvNorm(2 * w, w, 3, rngs=rngs)])
    self.edge_kernel = edge_kernel
    self.out = Conv(w, 3, edge_kernel, rngs=rngs)

  def __call__(self, images, blocked=False):
    """`blocked`: the forward pass as channel-blocked XLA convolutions (inference at 256-512
    px); the same result as the training path up to rounding."""
    x = images * 2.0 - 1.0
    for layer in self.down:
      x = layer(x, blocked)
    for block in self.res:
      x = block(x, blocked)
    for layer in self.up:
      b, h, w, c = x.shape
      x = layer(jax.image.resize(x, (b, 2 * h, 2 * w, c), "nearest"), blocked)
    return jax.nn.sigmoid(self.out(_reflect(x, self.edge_kernel), blocked))
