"""A StyleGAN2-class generator and discriminator (Karras et al., CVPR 2020, "Analyzing and
Improving the Image Quality of StyleGAN"; config-e/f layout of NVlabs' StyleGAN2-ADA), Flax NNX.

Generator: z -> mapping network (pixel-normalised z [+ a normalised class embedding], 8
equalised dense layers at learning-rate multiplier 0.01) -> w, tracked by its running mean
`w_avg` (truncation); synthesis from a learned 4x4 constant through modulated + demodulated
3x3 convolutions, per-pixel noise with learned strength, and a skip architecture (a toRGB
per resolution, summed through 2x upsampling). Discriminator: residual blocks (two 3x3
convolutions, a 1x1 skip, 1/sqrt(2) merge), minibatch standard deviation and a projection
head for class conditioning (Miyato & Koyama, 2018).

Choices for speed, each exact in what it computes (`docs/gan.md`, `benchmarks/stylegan.py`):
* every weight is stored N(0, 1) / lr_mul and scaled at run time by lr_mul / sqrt(fan_in)
  (equalised learning rate);
* modulation and demodulation as input and output scaling around ONE convolution shared by
  the batch (StyleGAN2's `fused_modconv=False` path): x * s, conv, * rsqrt(s^2 @ sum_k w^2),
  the same numbers as the grouped per-sample convolution;
* every 3x3 convolution is `artjax.nn.conv.conv2d`: canonical forward and backward
  convolutions (and second derivatives, for R1), fast on XLA:CPU inside the loop's scan and
  plain convolutions on accelerators;
* resampling with the separable [1, 3, 3, 1] filter: up = interleaved 1/4-3/4 taps, then the
  3x3 convolution at the higher resolution (StyleGAN2 fuses a transposed convolution); down
  = the filter at stride 2, then the convolution at the lower resolution.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from artjax import ConfigError
from artjax.image.models.features import downsample
from artjax.nn import logical
from artjax.nn.conv import conv2d
from artjax.nn.precision import bf16_matmul

SQRT2 = math.sqrt(2.0)


def _mm(x, w):
  """x [..., k] @ w [k, n]: bf16 operands with fp32 accumulation when either is bf16."""
  if jnp.bfloat16 in (x.dtype, w.dtype):
    return bf16_matmul(x, w)
  return jnp.matmul(x, w)


def _normal(rngs, shape, axes, scale=1.0):
  init = logical.named(nnx.initializers.normal(scale), axes)
  return nnx.Param(init(rngs.params(), shape))


def _const(value, shape, axes=None):
  init = logical.named(nnx.initializers.constant(value), axes or (None,) * len(shape))
  return nnx.Param(init(jax.random.key(0), shape))


def conv3x3(x, kernel):
  """'SAME' 3x3 convolution, x [B, H, W, C], kernel [3, 3, C, O] -> [B, H, W, O] (fp32 out)."""
  return conv2d(x, kernel, 1, "SAME")


def upsample(x):
  """2x upsampling with the [1, 3, 3, 1] filter (edge-replicated borders)."""
  def up(x, axis):
    n = x.shape[axis]
    xp = jnp.concatenate([jax.lax.slice_in_dim(x, 0, 1, axis=axis), x,
                          jax.lax.slice_in_dim(x, n - 1, n, axis=axis)], axis)
    mid = jax.lax.slice_in_dim(xp, 1, n + 1, axis=axis)
    even = 0.25 * jax.lax.slice_in_dim(xp, 0, n, axis=axis) + 0.75 * mid
    odd = 0.75 * mid + 0.25 * jax.lax.slice_in_dim(xp, 2, n + 2, axis=axis)
    y = jnp.stack([even, odd], axis + 1)
    return y.reshape(x.shape[:axis] + (2 * n,) + x.shape[axis + 1:])
  return up(up(x, 1), 2)


def _lrelu(x):
  return jax.nn.leaky_relu(x, 0.2) * SQRT2


def normalize_2nd_moment(x, eps=1e-8):
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


class EqLinear(nnx.Module):
  """Dense layer with equalised learning rate: y = x @ (W * lr_mul / sqrt(in)) + b * lr_mul."""

  def __init__(self, d_in, d_out, *, lr_mul=1.0, bias=True, bias_init=0.0, axes=logical.DENSE,
               rngs):
    self.kernel = _normal(rngs, (d_in, d_out), axes, 1.0 / lr_mul)
    self.bias = _const(bias_init / lr_mul, (d_out,), axes[-1:]) if bias else None
    self.w_gain, self.b_gain = lr_mul / math.sqrt(d_in), lr_mul

  def __call__(self, x):
    y = _mm(x, self.kernel[...] * jnp.asarray(self.w_gain, self.kernel[...].dtype)).astype(jnp.float32)
    return y if self.bias is None else y + self.bias[...].astype(jnp.float32) * self.b_gain


class WAvg(nnx.Variable):
  """The running mean of w (not trained: the step sets it)."""


class Mapping(nnx.Module):
  def __init__(self, latent_dim, w_dim, layers, lr_mul, num_classes, *, rngs):
    self.embed = _normal(rngs, (num_classes, w_dim), logical.EMBED) if num_classes else None
    d_in = latent_dim + (w_dim if num_classes else 0)
    self.fc = nnx.List([EqLinear(d_in if i == 0 else w_dim, w_dim, lr_mul=lr_mul,
                                 axes=logical.dense(i), rngs=rngs) for i in range(layers)])
    self.w_avg = WAvg(jnp.zeros((w_dim,), jnp.float32))

  def __call__(self, z, labels=None):
    x = normalize_2nd_moment(z.astype(jnp.float32))
    if self.embed is not None:
      table = self.embed[...].astype(jnp.float32)
      soft = jnp.issubdtype(labels.dtype, jnp.floating) and labels.ndim == 2   # class weights
      y = normalize_2nd_moment(labels @ table if soft else table[labels])
      x = jnp.concatenate([x, y], -1)
    for layer in self.fc:
      x = _lrelu(layer(x.astype(layer.kernel.dtype)))
    return x


class ModConv(nnx.Module):
  """Modulated 3x3 convolution (optionally after 2x upsampling) + noise + bias + lrelu."""

  def __init__(self, c_in, c_out, w_dim, *, up=False, demodulate=True, rngs):
    self.affine = EqLinear(w_dim, c_in, bias_init=1.0, axes=(None, None), rngs=rngs)
    self.kernel = _normal(rngs, (3, 3, c_in, c_out), logical.conv(0))
    self.noise_strength = _const(0.0, ())
    self.bias = _const(0.0, (c_out,))
    self.up, self.demodulate = up, demodulate
    self.gain = 1.0 / math.sqrt(9 * c_in)

  def __call__(self, x, w, noise):
    s = self.affine(w)                                               # [B, C] fp32
    if self.up:
      x = upsample(x)
    k = self.kernel[...].astype(jnp.float32) * self.gain
    y = conv3x3((x * s[:, None, None, :]).astype(self.kernel[...].dtype), k.astype(self.kernel[...].dtype))
    if self.demodulate:
      d = jax.lax.rsqrt(jnp.square(s) @ jnp.sum(jnp.square(k), (0, 1)) + 1e-8)   # [B, O]
      y = y * d[:, None, None, :]
    y = y + noise * self.noise_strength[...].astype(jnp.float32)
    return _lrelu(y + self.bias[...].astype(jnp.float32))


class ToRGB(nnx.Module):
  """Modulated 1x1 convolution to colour (no demodulation, no activation)."""

  def __init__(self, c_in, channels, w_dim, *, rngs):
    self.affine = EqLinear(w_dim, c_in, bias_init=1.0, axes=(None, None), rngs=rngs)
    self.kernel = _normal(rngs, (c_in, channels), (None, None))
    self.bias = _const(0.0, (channels,))
    self.gain = 1.0 / math.sqrt(c_in)

  def __call__(self, x, w):
    s = self.affine(w) * self.gain
    y = _mm((x * s[:, None, None, :]).astype(self.kernel[...].dtype), self.kernel[...])
    return y.astype(jnp.float32) + self.bias[...].astype(jnp.float32)


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
  return max(1, min(channel_base // res, channel_max))


def check_resolution(image_shape):
  h, w, _ = image_shape
  if h != w or h < 8 or h > 1024 or h & (h - 1):
    raise ConfigError(f"stylegan2 needs square images with a power-of-two side 8..1024 (16-256 "
                      f"recommended), got {h}x{w}")
  return int(math.log2(h))


class StyleGenerator(nnx.Module):
  """(z [B, latent], labels [B] | None) -> images [B, R, R, C] in [-1, 1] (constant noise,
  no truncation); `mapping`, `truncate` and `synthesis` for the StyleGAN task."""
  pixel_range = (-1.0, 1.0)
  upsample_image = staticmethod(upsample)     # the skip architecture's image upsampler

  def __init__(self, image_shape, *, latent_dim=512, w_dim=512, mapping_layers=8,
               mapping_lr_mul=0.01, channel_base=16384, channel_max=512, num_classes=0,
               rngs: nnx.Rngs):
    self.image_shape = tuple(image_shape)
    self.latent_dim, self.w_dim = latent_dim, w_dim
    top = check_resolution(image_shape)
    ch = lambda r: channels_at(r, channel_base, channel_max)
    self.mapping = Mapping(latent_dim, w_dim, mapping_layers, mapping_lr_mul, num_classes,
                           rngs=rngs)
    self.const = _normal(rngs, (4, 4, ch(4)), (None, None, None))
    convs = [ModConv(ch(4), ch(4), w_dim, rngs=rngs)]
    rgbs = [ToRGB(ch(4), image_shape[-1], w_dim, rngs=rngs)]
    for lg in range(3, top + 1):
      r = 2 ** lg
      convs += [ModConv(ch(r // 2), ch(r), w_dim, up=True, rngs=rngs),
                ModConv(ch(r), ch(r), w_dim, rngs=rngs)]
      rgbs.append(ToRGB(ch(r), image_shape[-1], w_dim, rngs=rngs))
    self.convs, self.torgbs = nnx.List(convs), nnx.List(rgbs)
    self.num_ws = len(convs) + 1
    self.layer_order = (("mapping", "const") + tuple(f"convs.{i}" for i in range(len(convs)))
                        + tuple(f"torgbs.{i}" for i in range(len(rgbs))))

  def noise_shapes(self):
    return [(2 ** (2 + (i + 1) // 2),) * 2 for i in range(len(self.convs))]

  def const_noise(self, batch):
    """The fixed per-layer noise used when none is given (StyleGAN's noise_mode='const')."""
    key = jax.random.key(20200101)
    return [jnp.broadcast_to(jax.random.normal(jax.random.fold_in(key, i), s + (1,)),
                             (batch,) + s + (1,)) for i, s in enumerate(self.noise_shapes())]

  def random_noise(self, key, batch):
    return [jax.random.normal(jax.random.fold_in(key, i), (batch,) + s + (1,))
            for i, s in enumerate(self.noise_shapes())]

  def truncate(self, w, psi):
    avg = self.mapping.w_avg[...]
    return avg + psi * (w - avg)

  def synthesis(self, ws, noise=None):
    """ws [B, num_ws, w_dim] -> images; noise: a list of [B, h, w, 1] per conv (None = const)."""
    b = ws.shape[0]
    noise = self.const_noise(b) if noise is None else noise
    x = jnp.broadcast_to(self.const[...].astype(jnp.float32), (b,) + self.const.shape)
    x = self.convs[0](x, ws[:, 0], noise[0])
    img = self.torgbs[0](x, ws[:, 1])
    for j in range(1, len(self.torgbs)):
      x = self.convs[2 * j - 1](x, ws[:, 2 * j - 1], noise[2 * j - 1])
      x = self.convs[2 * j](x, ws[:, 2 * j], noise[2 * j])
      img = self.upsample_image(img) + self.torgbs[j](x, ws[:, 2 * j + 1])
    return img

  def __call__(self, z, labels=None, truncation=1.0):
    w = self.mapping(z, labels)
    if truncation != 1.0:
      w = self.truncate(w, truncation)
    return self.synthesis(jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws, w.shape[-1])))


class EqConv(nnx.Module):
  """Equalised-learning-rate 3x3 or 1x1 convolution (+ bias, + lrelu)."""

  def __init__(self, c_in, c_out, *, size=3, bias=True, act=True, rngs):
    self.kernel = _normal(rngs, (size, size, c_in, c_out), logical.conv(0))
    self.bias = _const(0.0, (c_out,)) if bias else None
    self.size, self.act = size, act
    self.gain = 1.0 / math.sqrt(size * size * c_in)

  def __call__(self, x):
    k = self.kernel[...] * jnp.asarray(self.gain, self.kernel[...].dtype)
    if self.size == 3:
      y = conv3x3(x.astype(k.dtype), k)
    else:
      y = _mm(x.astype(k.dtype), k[0, 0]).astype(jnp.float32)
    if self.bias is not None:
      y = y + self.bias[...].astype(jnp.float32)
    return _lrelu(y) if self.act else y


class DBlock(nnx.Module):
  def __init__(self, c_in, c_out, *, rngs):
    self.conv0 = EqConv(c_in, c_in, rngs=rngs)
    self.conv1 = EqConv(c_in, c_out, rngs=rngs)
    self.skip = EqConv(c_in, c_out, size=1, bias=False, act=False, rngs=rngs)

  def __call__(self, x):
    y = self.conv1(downsample(self.conv0(x)))
    return (self.skip(downsample(x)) + y) * (1.0 / SQRT2)


def minibatch_std(x, group):
  """Appends the mean (over features) standard deviation within contiguous groups of
  `group` samples (contiguous, so a batch of reals followed by fakes never mixes them)."""
  b, h, w, c = x.shape
  g = math.gcd(b, group)
  y = x.reshape(b // g, g, h, w, c)
  std = jnp.sqrt(jnp.var(y, axis=1) + 1e-8).mean((1, 2, 3))           # [b/g]
  std = jnp.broadcast_to(jnp.repeat(std, g)[:, None, None, None], (b, h, w, 1))
  return jnp.concatenate([x, std], -1)


class StyleDiscriminator(nnx.Module):
  """(images [B, R, R, C], labels | None) -> logits [B]."""

  def __init__(self, image_shape, *, channel_base=16384, channel_max=512, num_classes=0,
               mbstd_group=4, rngs: nnx.Rngs):
    top = check_resolution(image_shape)
    ch = lambda r: channels_at(r, channel_base, channel_max)
    self.mbstd_group = mbstd_group
    self.fromrgb = EqConv(image_shape[-1], ch(2 ** top), size=1, rngs=rngs)
    self.blocks = nnx.List([DBlock(ch(2 ** lg), ch(2 ** (lg - 1)), rngs=rngs) for lg in range(top, 2, -1)])
    c4 = ch(4)
    self.conv = EqConv(c4 + 1, c4, rngs=rngs)
    self.fc = EqLinear(16 * c4, c4, axes=logical.dense(0), rngs=rngs)
    self.out = EqLinear(c4, 1, axes=logical.dense(1), rngs=rngs)
    self.proj = _normal(rngs, (num_classes, c4), logical.EMBED) if num_classes else None
    self.layer_order = (("fromrgb",) + tuple(f"blocks.{i}" for i in range(len(self.blocks)))
                        + ("conv", "fc", "out", "proj"))

  def __call__(self, x, labels=None):
    h = self.fromrgb(x)
    for block in self.blocks:
      h = block(h)
    h = self.conv(minibatch_std(h, self.mbstd_group))
    h = _lrelu(self.fc(h.reshape(h.shape[0], -1)))
    logit = self.out(h)[:, 0]
    if self.proj is not None:
      e = self.proj[...][labels].astype(jnp.float32)
      logit = logit + jnp.sum(e * h, -1) / math.sqrt(h.shape[-1])
    return logit


def build(model_cfg, image_shape, num_classes, g_rngs, d_rngs):
  """(StyleGenerator, StyleDiscriminator) from a `model` config block."""
  m = model_cfg
  # model.conv_impl (patches | xla) of runs written before artjax.nn.conv: the same maths
  # and parameters, so it is read and ignored
  if m.adapter_dim:
    raise ConfigError("model.adapter_dim: stylegan2 has no adapters (use finetune.method=lora)")
  g = StyleGenerator(image_shape, latent_dim=m.latent_dim, w_dim=m.w_dim,
                     mapping_layers=m.mapping_layers, mapping_lr_mul=m.mapping_lr_mul,
                     channel_base=m.channel_base, channel_max=m.channel_max,
                     num_classes=num_classes, rngs=g_rngs)
  d = StyleDiscriminator(image_shape, channel_base=m.channel_base, channel_max=m.channel_max,
                         num_classes=num_classes, mbstd_group=m.mbstd_group, rngs=d_rngs)
  return g, d
