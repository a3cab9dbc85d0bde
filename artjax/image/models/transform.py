"""The image-transformation network of fast style transfer (Johnson, Alahi and Fei-Fei 2016):
two strided downsampling convolutions, residual blocks, and resize-convolution upsampling
(nearest-neighbour x2 then a convolution: no checkerboard artefacts, Odena et al. 2016), with
instance normalisation (Ulyanov et al. 2016). Fully convolutional: any input size whose sides
are multiples of 4. Images in and out are float [B, H, W, 3] in [0, 1]."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def _reflect(x, k):
  p = k // 2
  return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")


class PatchConv(nnx.Module):
  """A VALID convolution computed as patches x matmul, one kernel row at a time: the k
  shifted (strided) slices of the input concatenated on channels, times that row of the
  kernel as a [k*cin, cout] matrix, summed over rows. Same
  parameters and result as `nnx.Conv`; on XLA:CPU a convolution inside a `lax.scan` (the
  loop's fused steps) runs about 20x slower than outside it, a matmul does not."""

  def __init__(self, cin, cout, k, stride=1, *, rngs):
    self.k, self.stride = k, stride
    init = nnx.initializers.lecun_normal()
    self.kernel = nnx.Param(init(rngs.params(), (k, k, cin, cout)))
    self.bias = nnx.Param(jnp.zeros((cout,)))

  def __call__(self, x, matmul=True):
    k, s = self.k, self.stride
    if not matmul:   # XLA's convolution: faster outside a scan (inference)
      return _blocked_conv(x, self.kernel[...], s) + self.bias[...]
    b, h, w, c = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    kernel = self.kernel[...]
    y = self.bias[...]
    for dy in range(k):   # one kernel row at a time: patches k times smaller than k*k
      cols = jnp.concatenate([x[:, dy:dy + s * (ho - 1) + 1:s, dx:dx + s * (wo - 1) + 1:s]
                              for dx in range(k)], -1)
      y = y + cols @ kernel[dy].reshape(-1, kernel.shape[-1])
    return y


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
    self.conv = PatchConv(cin, cout, k, stride, rngs=rngs)
    self.norm = nnx.InstanceNorm(cout, rngs=rngs)

  def __call__(self, x, matmul=True):
    y = self.norm(self.conv(_reflect(x, self.k), matmul))
    return jax.nn.relu(y) if self.relu else y


class Residual(nnx.Module):
  def __init__(self, c, *, rngs):
    self.a = ConvNorm(c, c, 3, rngs=rngs)
    self.b = ConvNorm(c, c, 3, relu=False, rngs=rngs)

  def __call__(self, x, matmul=True):
    return x + self.b(self.a(x, matmul), matmul)


class TransformNet(nnx.Module):
  def __init__(self, width=32, blocks=5, edge_kernel=9, *, rngs):
    w = width
    self.down = nnx.List([ConvNorm(3, w, edge_kernel, rngs=rngs), ConvNorm(w, 2 * w, 3, 2, rngs=rngs),
                          ConvNorm(2 * w, 4 * w, 3, 2, rngs=rngs)])
    self.res = nnx.List([Residual(4 * w, rngs=rngs) for _ in range(blocks)])
    self.up = nnx.List([ConvNorm(4 * w, 2 * w, 3, rngs=rngs), ConvNorm(2 * w, w, 3, rngs=rngs)])
    self.edge_kernel = edge_kernel
    self.out = PatchConv(w, 3, edge_kernel, rngs=rngs)

  def __call__(self, images, matmul=True):
    """`matmul`: convolutions as patches x matmul (training inside the loop's scan) or as
    channel-blocked XLA convolutions (one forward pass: 3.6-4.8x faster there at 256-512 px); the same result."""
    x = images * 2.0 - 1.0
    for layer in self.down:
      x = layer(x, matmul)
    for block in self.res:
      x = block(x, matmul)
    for layer in self.up:
      b, h, w, c = x.shape
      x = layer(jax.image.resize(x, (b, 2 * h, 2 * w, c), "nearest"), matmul)
    return jax.nn.sigmoid(self.out(_reflect(x, self.edge_kernel), matmul))
