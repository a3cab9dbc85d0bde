"""NVIDIA StyleGAN2-ADA's generator and discriminator, Flax NNX: what NVlabs'
`training/networks.py` (stylegan2-ada-pytorch; configs `stylegan2`, `paper256`, `auto`,
skip generator, resnet discriminator) computes, parameter for parameter, so that
`run.py import` can load NVIDIA's pickles (`artjax.image.nvidia_pickle`) and every artjax
command then draws what NVIDIA's code draws.

What it computes, as NVIDIA does:
* mapping: z normalised by its second moment [+ the normalised embedding of a one-hot class
  c, a dense layer with bias], `mapping_layers` equalised dense layers at lr multiplier 0.01
  with lrelu x sqrt(2); `w_avg` for truncation (lerp over every layer);
* synthesis from a learned 4x4 constant; per resolution a 2x up-convolution (a transposed
  3x3 convolution followed by the [1, 3, 3, 1] FIR filter at gain 4, zero borders) and a 3x3
  convolution, both modulated by affine(w) and demodulated, per-pixel noise times a learned
  strength (`noise_const` buffers for noise mode const), bias, lrelu x sqrt(2), clamped to
  +-`conv_clamp`; a modulated 1x1 ToRGB (no demodulation, weight gain 1/sqrt(C), clamped) per
  resolution, summed through the FIR upsampler (skip architecture);
* discriminator: fromRGB at the top resolution, per block a 3x3 convolution and a 3x3
  convolution at stride 2 after the FIR filter, plus a 1x1 skip after the FIR downsampler,
  merged with gain sqrt(1/2); minibatch standard deviation over groups of NVIDIA's layout
  (sample i joins i + N/G, i + 2N/G, ...), a 3x3 convolution, two dense layers; conditional
  models project the output on a mapped class embedding (`cmap`) / sqrt(cmap_dim).

Everything runs in float32 on the fast canonical convolution (`artjax.nn.conv.conv2d`); the
transposed convolution is the equal stride-1 convolution of the zero-interleaved input, so no
convolution falls back on XLA:CPU. NVIDIA runs its top resolutions in fp16 on GPUs; this is
the exact fp32 computation (their `force_fp32=True`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from artjax import ConfigError
from artjax.image.models.stylegan import (EqLinear, StyleGenerator, WAvg, _const, _normal,
                                          check_resolution, normalize_2nd_moment)
from artjax.nn import logical
from artjax.nn.conv import conv2d

SQRT2 = math.sqrt(2.0)
TAPS = (0.125, 0.375, 0.375, 0.125)        # [1, 3, 3, 1] / 8: the separable, normalised FIR


class NoiseConst(nnx.Variable):
  """The fixed noise image of a layer (NVIDIA's `noise_const` buffer; never trained)."""


def fir(x, pad, gain=1.0, down=1):
  """NVIDIA's upfirdn2d with the [1, 3, 3, 1] filter along H and W of x [B, H, W, C]: zero
  padding `pad` = (before, after) on each axis, the filter (its 2-D gain split over the two
  axes), then every `down`-th sample."""
  taps = [t * math.sqrt(gain) for t in TAPS]
  for axis in (1, 2):
    x = jax.lax.pad(x, jnp.zeros((), x.dtype),
                    [(pad[0], pad[1], 0) if a == axis else (0, 0, 0) for a in range(4)])
    n = x.shape[axis] - len(taps) + 1
    x = sum(t * jax.lax.slice_in_dim(x, i, i + n, axis=axis) for i, t in enumerate(taps))
    if down > 1:
      x = jax.lax.slice_in_dim(x, 0, n, down, axis=axis)
  return x


def interleave_zeros(x):
  """[B, H, W, C] -> [B, 2H, 2W, C] with x at the even positions and zeros between."""
  b, h, w, c = x.shape
  z = jnp.zeros_like(x)
  x = jnp.stack([jnp.stack([x, z], 3), jnp.stack([z, z], 3)], 2)      # [B, H, 2, W, 2, C]
  return x.reshape(b, 2 * h, 2 * w, c)


def upsample2d(x):
  """NVIDIA's `upsample2d` with [1, 3, 3, 1]: zero interleave, pad (2, 1), filter at gain 4."""
  return fir(interleave_zeros(x), (2, 1), gain=4.0)


def conv_up(x, kernel):
  """NVIDIA's `conv2d_resample(up=2, padding=1)` for a 3x3 kernel [3, 3, I, O]: the transposed
  convolution at stride 2 (as the stride-1 convolution of the zero-interleaved input with the
  flipped kernel), then the FIR filter at gain 4 with padding 1."""
  y = conv2d(interleave_zeros(x), kernel[::-1, ::-1], 1, ((2, 1), (2, 1)))
  return fir(y, (1, 1), gain=4.0)


def bias_act(x, bias, act, gain=1.0, clamp=None):
  """NVIDIA's bias_act: + bias, activation (lrelu 0.2 or linear), x gain, clamp to +-clamp."""
  x = x if bias is None else x + bias[...].astype(jnp.float32)
  if act == "lrelu":
    x = jax.nn.leaky_relu(x, 0.2)
  x = x * gain if gain != 1.0 else x
  return x if clamp is None else jnp.clip(x, -clamp, clamp)


def _lrelu_dense(layer, x):
  return bias_act(layer(x), None, "lrelu", SQRT2)


class Mapping(nnx.Module):
  """z [, class] -> w. `z_dim` 0 with classes: the discriminator's class mapping (cmap)."""

  def __init__(self, z_dim, c_dim, w_dim, layers, lr_mul, *, track_w_avg=True, rngs):
    self.z_dim, self.c_dim = z_dim, c_dim
    self.embed = EqLinear(c_dim, w_dim, axes=logical.EMBED, rngs=rngs) if c_dim else None
    d_in = z_dim + (w_dim if c_dim else 0)
    self.fc = nnx.List([EqLinear(d_in if i == 0 else w_dim, w_dim, lr_mul=lr_mul,
                                 axes=logical.dense(i), rngs=rngs) for i in range(layers)])
    self.w_avg = WAvg(jnp.zeros((w_dim,), jnp.float32)) if track_w_avg else None

  def __call__(self, z, labels=None):
    parts = [normalize_2nd_moment(z.astype(jnp.float32))] if self.z_dim else []
    if self.c_dim:
      soft = jnp.issubdtype(labels.dtype, jnp.floating) and labels.ndim == 2   # class weights
      c = labels.astype(jnp.float32) if soft else jax.nn.one_hot(labels, self.c_dim)
      parts.append(normalize_2nd_moment(self.embed(c)))
    x = jnp.concatenate(parts, -1) if len(parts) > 1 else parts[0]
    for layer in self.fc:
      x = _lrelu_dense(layer, x.astype(layer.kernel.dtype))
    return x


class SynthesisLayer(nnx.Module):
  """Modulated, demodulated 3x3 convolution (2x up-convolution if `up`), noise, bias, lrelu."""

  def __init__(self, c_in, c_out, w_dim, resolution, *, up=False, conv_clamp=None, rngs):
    self.affine = EqLinear(w_dim, c_in, bias_init=1.0, axes=(None, None), rngs=rngs)
    self.kernel = _normal(rngs, (3, 3, c_in, c_out), logical.conv(0))
    self.noise_const = NoiseConst(jax.random.normal(rngs.params(), (resolution, resolution)))
    self.noise_strength = _const(0.0, ())
    self.bias = _const(0.0, (c_out,))
    self.up, self.conv_clamp = up, conv_clamp

  def __call__(self, x, w, noise):
    s = self.affine(w)                                                    # [B, I]
    k = self.kernel[...].astype(jnp.float32)
    x = x * s[:, None, None, :]
    y = conv_up(x, k) if self.up else conv2d(x, k, 1, "SAME")
    d = jax.lax.rsqrt(jnp.square(s) @ jnp.sum(jnp.square(k), (0, 1)) + 1e-8)   # [B, O]
    y = y * d[:, None, None, :] + noise * self.noise_strength[...].astype(jnp.float32)
    return bias_act(y, self.bias, "lrelu", SQRT2, self.conv_clamp)


class ToRGB(nnx.Module):
  """Modulated 1x1 convolution, no demodulation, weight gain 1/sqrt(C), bias, clamp."""

  def __init__(self, c_in, channels, w_dim, *, conv_clamp=None, rngs):
    self.affine = EqLinear(w_dim, c_in, bias_init=1.0, axes=(None, None), rngs=rngs)
    self.kernel = _normal(rngs, (c_in, channels), (None, None))
    self.bias = _const(0.0, (channels,))
    self.gain, self.conv_clamp = 1.0 / math.sqrt(c_in), conv_clamp

  def __call__(self, x, w):
    s = self.affine(w) * self.gain
    y = (x * s[:, None, None, :]) @ self.kernel[...].astype(jnp.float32)
    return bias_act(y, self.bias, "linear", 1.0, self.conv_clamp)


def channels_dict(top: int, channel_base: int, channel_max: int) -> dict:
  return {2 ** lg: min(channel_base // 2 ** lg, channel_max) for lg in range(2, top + 1)}


class Generator(StyleGenerator):
  """(z [B, z_dim], labels [B] | None) -> images [B, R, R, C] (about [-1, 1]), NVIDIA's G;
  `mapping`, `truncate`, `synthesis`, `const_noise`, `random_noise` for the StyleGAN task
  (the synthesis loop is StyleGenerator's, with NVIDIA's layers and image upsampler)."""
  upsample_image = staticmethod(upsample2d)

  def __init__(self, image_shape, *, latent_dim=512, w_dim=512, mapping_layers=8,
               mapping_lr_mul=0.01, channel_base=32768, channel_max=512, num_classes=0,
               conv_clamp=256.0, rngs: nnx.Rngs):
    self.image_shape = tuple(image_shape)
    self.latent_dim, self.w_dim = latent_dim, w_dim
    top = check_resolution(image_shape)
    ch = channels_dict(top, channel_base, channel_max)
    clamp = conv_clamp or None
    self.mapping = Mapping(latent_dim, num_classes, w_dim, mapping_layers, mapping_lr_mul,
                           rngs=rngs)
    self.const = _normal(rngs, (4, 4, ch[4]), (None, None, None))
    convs = [SynthesisLayer(ch[4], ch[4], w_dim, 4, conv_clamp=clamp, rngs=rngs)]
    rgbs = [ToRGB(ch[4], image_shape[-1], w_dim, conv_clamp=clamp, rngs=rngs)]
    for lg in range(3, top + 1):
      r = 2 ** lg
      convs += [SynthesisLayer(ch[r // 2], ch[r], w_dim, r, up=True, conv_clamp=clamp, rngs=rngs),
                SynthesisLayer(ch[r], ch[r], w_dim, r, conv_clamp=clamp, rngs=rngs)]
      rgbs.append(ToRGB(ch[r], image_shape[-1], w_dim, conv_clamp=clamp, rngs=rngs))
    self.convs, self.torgbs = nnx.List(convs), nnx.List(rgbs)
    self.num_ws = len(convs) + 1
    self.layer_order = (("mapping", "const") + tuple(f"convs.{i}" for i in range(len(convs)))
                        + tuple(f"torgbs.{i}" for i in range(len(rgbs))))

  def noise_shapes(self):
    return [layer.noise_const.shape for layer in self.convs]

  def const_noise(self, batch):
    """Each layer's `noise_const` (NVIDIA's noise_mode='const'), [batch, h, w, 1] each."""
    return [jnp.broadcast_to(layer.noise_const[...].astype(jnp.float32)[None, :, :, None],
                             (batch,) + layer.noise_const.shape + (1,)) for layer in self.convs]


class Conv(nnx.Module):
  """NVIDIA's Conv2dLayer (1x1 or 3x3; `down` 2 = FIR filter, then the stride-2 convolution)."""

  def __init__(self, c_in, c_out, *, size=3, bias=True, act="lrelu", down=1, conv_clamp=None,
               rngs):
    self.kernel = _normal(rngs, (size, size, c_in, c_out), logical.conv(0))
    self.bias = _const(0.0, (c_out,)) if bias else None
    self.size, self.act, self.down, self.conv_clamp = size, act, down, conv_clamp
    self.gain = 1.0 / math.sqrt(size * size * c_in)

  def __call__(self, x, gain=1.0):
    k = self.kernel[...].astype(jnp.float32) * self.gain
    if self.size == 1:
      y = (fir(x, (1, 1), down=2) if self.down > 1 else x) @ k[0, 0]
    elif self.down > 1:
      y = conv2d(fir(x, (2, 2)), k, 2, "VALID")
    else:
      y = conv2d(x, k, 1, "SAME")
    act_gain = (SQRT2 if self.act == "lrelu" else 1.0) * gain
    clamp = None if self.conv_clamp is None else self.conv_clamp * gain
    return bias_act(y, self.bias, self.act, act_gain, clamp)


class DBlock(nnx.Module):
  """A resnet discriminator block: [fromRGB], conv0, conv1 at stride 2, 1x1 skip, sqrt(1/2)."""

  def __init__(self, c_tmp, c_out, channels, *, first, conv_clamp, rngs):
    self.fromrgb = (Conv(channels, c_tmp, size=1, conv_clamp=conv_clamp, rngs=rngs)
                    if first else None)
    self.conv0 = Conv(c_tmp, c_tmp, conv_clamp=conv_clamp, rngs=rngs)
    self.conv1 = Conv(c_tmp, c_out, down=2, conv_clamp=conv_clamp, rngs=rngs)
    self.skip = Conv(c_tmp, c_out, size=1, bias=False, act="linear", down=2, rngs=rngs)

  def __call__(self, x):
    if self.fromrgb is not None:
      x = self.fromrgb(x)
    y = self.skip(x, gain=math.sqrt(0.5))
    return y + self.conv1(self.conv0(x), gain=math.sqrt(0.5))


def minibatch_std(x, group, num_channels=1):
  """NVIDIA's MinibatchStdLayer: groups of G = min(group, N) samples, sample i with i + N/G,
  i + 2N/G, ...; per group the std over the group, averaged per feature group of channels."""
  n, h, w, c = x.shape
  g = min(group, n) if group else n
  if n % g:
    raise ValueError(f"minibatch std: a batch of {n} does not split into groups of {g}")
  f = num_channels
  y = x.astype(jnp.float32).reshape(g, n // g, h, w, f, c // f)
  y = jnp.sqrt(jnp.var(y, axis=0) + 1e-8).mean((1, 2, 4))               # [n/G, F]
  y = jnp.tile(y, (g, 1))                                                 # [N, F]
  return jnp.concatenate([x, jnp.broadcast_to(y[:, None, None, :], (n, h, w, f))], -1)


class Discriminator(nnx.Module):
  """(images [B, R, R, C], labels | None) -> logits [B], NVIDIA's resnet D."""

  def __init__(self, image_shape, *, channel_base=32768, channel_max=512, num_classes=0,
               mbstd_group=4, mbstd_channels=1, mapping_layers=8, cmap_dim=0,
               conv_clamp=256.0, rngs: nnx.Rngs):
    top = check_resolution(image_shape)
    ch = channels_dict(top, channel_base, channel_max)
    clamp = conv_clamp or None
    self.mbstd_group, self.mbstd_channels = mbstd_group, mbstd_channels
    self.blocks = nnx.List([DBlock(ch[2 ** lg], ch[2 ** (lg - 1)], image_shape[-1],
                                   first=lg == top, conv_clamp=clamp, rngs=rngs)
                            for lg in range(top, 2, -1)])
    c4 = ch[4]
    self.cmap_dim = (cmap_dim or c4) if num_classes else 0
    self.mapping = (Mapping(0, num_classes, self.cmap_dim, mapping_layers, 0.01,
                            track_w_avg=False, rngs=rngs) if num_classes else None)
    self.conv = Conv(c4 + mbstd_channels, c4, conv_clamp=clamp, rngs=rngs)
    self.fc = EqLinear(16 * c4, c4, axes=logical.dense(0), rngs=rngs)
    self.out = EqLinear(c4, self.cmap_dim or 1, axes=logical.dense(1), rngs=rngs)
    self.layer_order = (tuple(f"blocks.{i}" for i in range(len(self.blocks)))
                        + ("conv", "fc", "out", "mapping"))

  def __call__(self, x, labels=None):
    h = x.astype(jnp.float32)
    for block in self.blocks:
      h = block(h)
    if self.mbstd_channels:
      h = minibatch_std(h, self.mbstd_group, self.mbstd_channels)
    h = self.conv(h)
    h = _lrelu_dense(self.fc, h.reshape(h.shape[0], -1))
    out = self.out(h)
    if self.mapping is None:
      return out[:, 0]
    cmap = self.mapping(None, labels)
    return jnp.sum(out * cmap, -1) / math.sqrt(self.cmap_dim)


def build(model_cfg, image_shape, num_classes, g_rngs, d_rngs):
  """(Generator, Discriminator) from a `model` config block (model.name stylegan2_ada)."""
  m = model_cfg
  if m.adapter_dim:
    raise ConfigError("model.adapter_dim: stylegan2_ada has no adapters (use finetune.method=lora)")
  clamp = float(m.get("conv_clamp", 256.0))
  g = Generator(image_shape, latent_dim=m.latent_dim, w_dim=m.w_dim,
                mapping_layers=m.mapping_layers, mapping_lr_mul=m.mapping_lr_mul,
                channel_base=m.channel_base, channel_max=m.channel_max,
                num_classes=num_classes, conv_clamp=clamp, rngs=g_rngs)
  d = Discriminator(image_shape, channel_base=m.channel_base, channel_max=m.channel_max,
                    num_classes=num_classes, mbstd_group=m.mbstd_group,
                    mbstd_channels=m.get("mbstd_channels", 1),
                    mapping_layers=m.get("d_mapping_layers", m.mapping_layers),
                    cmap_dim=m.get("cmap_dim", 0), conv_clamp=clamp, rngs=d_rngs)
  return g, d
