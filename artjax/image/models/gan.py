"""GAN generators and discriminators (Flax NNX), sized from the image shape.

Every generator maps `(z [B, latent], labels [B] | None)` to images `[B, H, W, C]` in
its `pixel_range`; every discriminator maps `(images, labels | None)` to logits `[B]`
(the seed's final sigmoid is folded into the numerically stable loss).

* `mlp_seed`: the seed tutorial's networks exactly: G = Linear(100->256), sigmoid,
  Linear(256->HWC), sigmoid; D = Linear(HWC->256), sigmoid, Linear(256->1) [, sigmoid].
* `mlp`: a modern MLP GAN (LeakyReLU, tanh output, optional class conditioning).
* `tracks`: the MLP GAN whose generator draws binary images as `model.tracks` monophonic
  lines (piano rolls as voices), with the MLP discriminator.
* `dcgan`: a DCGAN-style conv GAN (nearest upsample + 3x3 conv generator stages with pixel
  norm from a 4x4-or-larger base, 4x4 stride-2 conv discriminator), any H, W divisible by 4,
  any channels; no transposed convolutions (`artjax.nn.conv`).
* `dcgan_torch`: PyTorch's DCGAN-tutorial generator (`artjax.image.models.dcgan_torch`, what
  `run.py import` reads) with the DCGAN discriminator.
* `projected`: the DCGAN generator against the projected discriminator of
  `artjax.image.models.projected` (pretrained EfficientNet-Lite0 features, fixed random
  projections, per-scale heads).
* `stylegan2`: the StyleGAN2-class pair of `artjax.image.models.stylegan`.
Class conditioning: the generator embeds the label and concatenates it to z; the
discriminator uses a projection head (Miyato & Koyama, 2018).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from artjax import ConfigError
from artjax.image.models import stylegan
from artjax.nn import logical
from artjax.nn.precision import Conv, Embed, Linear


def _lrelu(x):
  return jax.nn.leaky_relu(x, 0.2)


def _pixel_norm(x, eps=1e-8):
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


class SeedGenerator(nnx.Module):
  pixel_range = (0.0, 1.0)
  layer_order = ("fc1", "fc2")

  def __init__(self, image_shape, *, latent_dim=100, hidden=256, rngs: nnx.Rngs):
    self.image_shape = tuple(image_shape)
    self.latent_dim = latent_dim
    self.fc1 = Linear(latent_dim, hidden, axes=logical.dense(0), rngs=rngs)
    self.fc2 = Linear(hidden, math.prod(image_shape), axes=logical.dense(1), rngs=rngs)

  def __call__(self, z, labels=None):
    del labels
    h = jax.nn.sigmoid(self.fc1(z))
    x = jax.nn.sigmoid(self.fc2(h))
    return x.reshape((z.shape[0],) + self.image_shape)


class SeedDiscriminator(nnx.Module):
  layer_order = ("fc1", "fc2")

  def __init__(self, image_shape, *, hidden=256, rngs: nnx.Rngs):
    self.fc1 = Linear(math.prod(image_shape), hidden, axes=logical.dense(0), rngs=rngs)
    self.fc2 = Linear(hidden, 1, axes=logical.dense(1), rngs=rngs)

  def __call__(self, x, labels=None):
    del labels
    h = jax.nn.sigmoid(self.fc1(x.reshape((x.shape[0], -1))))
    return self.fc2(h)[:, 0]


class Adapter(nnx.Module):
  """Houlsby bottleneck adapter on the last axis: h + up(gelu(down(h))); `up` starts at zero,
  so a model with adapters starts exactly at the model without them."""

  def __init__(self, features, dim, *, rngs):
    self.down = Linear(features, dim, axes=(None, None), rngs=rngs)
    self.up = Linear(dim, features, kernel_init=nnx.initializers.zeros, axes=(None, None),
                     rngs=rngs)

  def __call__(self, h):
    return h + self.up(jax.nn.gelu(self.down(h)))


def _adapters(n, features, dim, rngs):
  return nnx.List([Adapter(features, dim, rngs=rngs) for _ in range(n)]) if dim else None


class _LabelEmbed(nnx.Module):
  def __init__(self, num_classes, dim, *, rngs):
    self.embed = Embed(num_classes, dim, rngs=rngs)

  def __call__(self, labels):
    """Class indices [B], or class weights [B, classes] (a mixture: animated class morphs)."""
    if jnp.issubdtype(labels.dtype, jnp.floating) and labels.ndim == 2:
      return labels @ self.embed.embedding[...].astype(labels.dtype)
    return self.embed(labels)


class MLPGenerator(nnx.Module):
  pixel_range = (-1.0, 1.0)

  def __init__(self, image_shape, *, latent_dim=64, width=256, depth=2, num_classes=0,
               adapter_dim=0, rngs: nnx.Rngs):
    self.image_shape = tuple(image_shape)
    self.latent_dim = latent_dim
    self.adapters = _adapters(depth, width, adapter_dim, rngs)
    self.label_embed = _LabelEmbed(num_classes, latent_dim, rngs=rngs) if num_classes else None
    d_in = latent_dim * (2 if num_classes else 1)
    self.hidden = nnx.List([Linear(d_in if i == 0 else width, width, axes=logical.dense(i),
                                   rngs=rngs) for i in range(depth)])
    self.out = Linear(width, math.prod(image_shape), axes=logical.dense(depth), rngs=rngs)
    self.layer_order = ("label_embed",) + tuple(f"hidden.{i}" for i in range(depth)) + ("out",)

  def trunk(self, z, labels=None):
    h = z
    if self.label_embed is not None:
      h = jnp.concatenate([h, self.label_embed(labels)], axis=-1)
    for i, layer in enumerate(self.hidden):
      h = _lrelu(layer(h))
      if self.adapters is not None:
        h = self.adapters[i](h)
    return h

  def __call__(self, z, labels=None):
    return jnp.tanh(self.out(self.trunk(z, labels))).reshape((z.shape[0],) + self.image_shape)


def straight_through(hard, soft):
  """`hard` forward, `soft`'s gradient backward (Bengio et al. 2013's estimator)."""
  return soft + jax.lax.stop_gradient(hard - soft)


class TrackGenerator(MLPGenerator):
  """Binary images [H, W, 1] made of `tracks` monophonic lines (MuseGAN's tracks; a
  chorale's four voices in a piano roll of frames x keys): in every row each track picks
  one column or a rest, and the image is their union, so a row never holds more than
  `tracks` lit cells. The MLP trunk is MLPGenerator's; the choices are hard one-hots in
  the forward pass and the softmax's gradient in the backward pass (BinaryMuseGAN's
  deterministic binary neurons, straight-through)."""

  def __init__(self, image_shape, *, tracks=4, latent_dim=64, width=256, depth=2,
               num_classes=0, adapter_dim=0, rngs: nnx.Rngs):
    super().__init__(image_shape, latent_dim=latent_dim, width=width, depth=depth,
                     num_classes=num_classes, adapter_dim=adapter_dim, rngs=rngs)
    if image_shape[-1] != 1:
      raise ConfigError(f"model tracks draws one-channel images, not {image_shape}")
    self.tracks = tracks
    rows, cols = image_shape[0], image_shape[1]
    self.out = Linear(width, rows * tracks * (cols + 1), axes=logical.dense(depth), rngs=rngs)

  def __call__(self, z, labels=None):
    rows, cols = self.image_shape[0], self.image_shape[1]
    logits = self.out(self.trunk(z, labels)).astype(jnp.float32)
    logits = logits.reshape(z.shape[0], rows, self.tracks, cols + 1)   # last column: rest
    pick = straight_through(jax.nn.one_hot(jnp.argmax(logits, -1), cols + 1),
                            jax.nn.softmax(logits, -1))
    union = pick[..., :cols].sum(axis=2)
    union = straight_through(jnp.minimum(union, 1.0), union)           # unisons light once
    return (2.0 * union - 1.0)[..., None]


class _ProjectionHead(nnx.Module):
  """logit = w.h + b (+ <embed(y), h> when conditional)."""

  def __init__(self, features, num_classes, *, axes=logical.DENSE, rngs):
    self.out = Linear(features, 1, axes=axes, rngs=rngs)
    self.proj = Embed(num_classes, features, rngs=rngs) if num_classes else None

  def __call__(self, h, labels):
    logit = self.out(h)[:, 0]
    if self.proj is not None:
      logit = logit + jnp.sum(self.proj(labels) * h, axis=-1)
    return logit


def fold_columns(x, period: int):
  """[B, H, W, C] -> [B, H, period, C]: the sums of every `period`-th column (a piano roll's
  keys folded into its 12 pitch classes: chords become visible whatever their octaves)."""
  pad = -x.shape[2] % period
  x = jnp.pad(x, ((0, 0), (0, 0), (0, pad), (0, 0)))
  return x.reshape(x.shape[0], x.shape[1], -1, period, x.shape[3]).sum(axis=2)


class MLPDiscriminator(nnx.Module):
  """An MLP on the flattened image (and, with `fold` > 0, on its columns folded modulo
  `fold` as well: `fold_columns`)."""

  def __init__(self, image_shape, *, width=256, depth=2, num_classes=0, adapter_dim=0,
               fold=0, rngs: nnx.Rngs):
    self.fold = fold
    h, w, c = image_shape
    d_in = h * w * c + (h * fold * c if fold else 0)
    self.adapters = _adapters(depth, width, adapter_dim, rngs)
    self.hidden = nnx.List([Linear(d_in if i == 0 else width, width, axes=logical.dense(i),
                                   rngs=rngs) for i in range(depth)])
    self.head = _ProjectionHead(width, num_classes, axes=logical.dense(depth), rngs=rngs)
    self.layer_order = tuple(f"hidden.{i}" for i in range(depth)) + ("head",)

  def __call__(self, x, labels=None):
    h = x.reshape((x.shape[0], -1))
    if self.fold:   # pixels in [-1, 1] -> lit cells counted per folded column
      h = jnp.concatenate([h, fold_columns((x + 1.0) / 2.0, self.fold).reshape(h.shape[0], -1)
                           .astype(h.dtype)], axis=-1)
    for i, layer in enumerate(self.hidden):
      h = _lrelu(layer(h))
      if self.adapters is not None:
        h = self.adapters[i](h)
    return self.head(h, labels)


def dcgan_stages(h: int, w: int) -> int:
  """How many 2x resolution stages a DCGAN pair has at h x w: halvings down to a base whose
  sides stay whole and at least 4 (32 -> 3 stages from 4x4, 28 -> 2 from 7x7, 8 -> 1)."""
  if h % 4 or w % 4:
    raise ConfigError(f"dcgan needs image height and width divisible by 4, got {h}x{w}")
  n = 1
  while h % 2 ** (n + 1) == 0 and w % 2 ** (n + 1) == 0 and min(h, w) // 2 ** (n + 1) >= 4:
    n += 1
  return n


def _dcgan_channels(width: int, stages: int) -> list[int]:
  """Channels from the base (index 0) to full resolution (index `stages`): `width` at full
  resolution, doubling at each halving, at most 8 x width."""
  return [width * min(2 ** (stages - i), 8) for i in range(stages + 1)]


def _up(x):
  b, h, w, c = x.shape
  return jax.image.resize(x, (b, 2 * h, 2 * w, c), "nearest")


class ConvGenerator(nnx.Module):
  """DCGAN generator without transposed convolutions: z -> a base of sides H/2^n, W/2^n
  (at least 4), then n stages of nearest 2x upsampling + 3x3 convolution halving the
  channels, a 3x3 convolution at full resolution and a 3x3 convolution to the image; pixel
  norm and LeakyReLU after each (Karras et al. 2018), tanh output."""
  pixel_range = (-1.0, 1.0)

  def __init__(self, image_shape, *, latent_dim=64, width=64, num_classes=0, adapter_dim=0,
               rngs: nnx.Rngs):
    h, w, c = image_shape
    n = dcgan_stages(h, w)
    ch = _dcgan_channels(width, n)
    self.image_shape = tuple(image_shape)
    self.latent_dim = latent_dim
    self.base = (h // 2 ** n, w // 2 ** n, ch[0])
    self.label_embed = _LabelEmbed(num_classes, latent_dim, rngs=rngs) if num_classes else None
    d_in = latent_dim * (2 if num_classes else 1)
    self.fc = Linear(d_in, math.prod(self.base), axes=logical.dense(0), rngs=rngs)
    self.convs = nnx.List([Conv(ch[i], ch[i + 1], (3, 3), axes=logical.conv(i + 1), rngs=rngs)
                           for i in range(n)])
    self.final = Conv(ch[n], ch[n], (3, 3), axes=logical.conv(n + 1), rngs=rngs)
    self.to_img = Conv(ch[n], c, (3, 3), axes=logical.conv(n + 2), rngs=rngs)
    # Adapters after each stage and the final convolution act per pixel on channels.
    self.adapters = nnx.List([Adapter(f, adapter_dim, rngs=rngs) for f in ch[1:] + ch[n:]]
                             ) if adapter_dim else None
    self.layer_order = (("label_embed", "fc") + tuple(f"convs.{i}" for i in range(n))
                        + ("final", "to_img"))

  def __call__(self, z, labels=None):
    h = z
    if self.label_embed is not None:
      h = jnp.concatenate([h, self.label_embed(labels)], axis=-1)
    h = _pixel_norm(_lrelu(self.fc(h))).reshape((z.shape[0],) + self.base)
    convs = list(self.convs) + [self.final]
    for i, conv in enumerate(convs):
      h = _pixel_norm(_lrelu(conv(h if conv is self.final else _up(h))))
      if self.adapters is not None:
        h = self.adapters[i](h)
    return jnp.tanh(self.to_img(h))


class ConvDiscriminator(nnx.Module):
  """DCGAN discriminator: a 3x3 convolution at full resolution, then n 4x4 stride-2
  convolutions doubling the channels down to the generator's base, a dense layer and a
  projection head; LeakyReLU(0.2)."""

  def __init__(self, image_shape, *, width=64, num_classes=0, adapter_dim=0, rngs: nnx.Rngs):
    h, w, c = image_shape
    n = dcgan_stages(h, w)
    ch = _dcgan_channels(width, n)[::-1]          # full resolution first
    self.conv0 = Conv(c, ch[0], (3, 3), axes=logical.conv(0), rngs=rngs)
    self.downs = nnx.List([Conv(ch[i], ch[i + 1], (4, 4), strides=(2, 2),
                                axes=logical.conv(i + 1), rngs=rngs) for i in range(n)])
    feats = (h // 2 ** n) * (w // 2 ** n) * ch[n]
    self.fc = Linear(feats, 4 * width, axes=logical.dense(1), rngs=rngs)
    self.head = _ProjectionHead(4 * width, num_classes, axes=logical.dense(2), rngs=rngs)
    self.adapters = nnx.List([Adapter(f, adapter_dim, rngs=rngs) for f in ch]
                             ) if adapter_dim else None
    self.layer_order = ("conv0",) + tuple(f"downs.{i}" for i in range(n)) + ("fc", "head")

  def __call__(self, x, labels=None):
    h = _lrelu(self.conv0(x))
    for i, conv in enumerate([None] + list(self.downs)):
      if conv is not None:
        h = _lrelu(conv(h))
      if self.adapters is not None:
        h = self.adapters[i](h)
    h = _lrelu(self.fc(h.reshape((h.shape[0], -1))))
    return self.head(h, labels)


GAN_MODELS = ("mlp_seed", "mlp", "tracks", "dcgan", "dcgan_torch", "projected", "stylegan2",
              "stylegan2_ada")


def frozen_parts(module) -> tuple:
  """The top-level attributes of a model whose weights are fixed (never trained)."""
  return tuple(getattr(type(module), "frozen", ()))


def _tutorial_pair(model_cfg, image_shape, nc, adapter_dim, g_rngs, d_rngs):
  """PyTorch's DCGAN-tutorial generator (what `run.py import` reads) + the DCGAN discriminator."""
  from artjax.image.models import dcgan_torch
  if nc or adapter_dim:
    raise ConfigError("model dcgan_torch is PyTorch's unconditional DCGAN-tutorial generator: "
                      "set model.conditional=False and model.adapter_dim=0")
  h, w, c = image_shape
  ups = dcgan_stages(h, w)
  if h != w or 4 * 2 ** ups != h:
    raise ConfigError(f"model dcgan_torch draws square pictures of 4 * 2^k px, not {h}x{w}")
  chans = ((model_cfg.latent_dim,) + tuple(model_cfg.width * 2 ** (ups - 1 - i)
                                           for i in range(ups)) + (c,))
  return (dcgan_torch.TutorialGenerator(chans, rngs=g_rngs),
          ConvDiscriminator(image_shape, width=model_cfg.get("d_width") or model_cfg.width,
                            rngs=d_rngs))


def _projected_pair(model_cfg, image_shape, nc, adapter_dim, g_rngs, d_rngs):
  """The DCGAN generator + the projected discriminator on pretrained features."""
  from artjax.image.models import projected
  return (ConvGenerator(image_shape, latent_dim=model_cfg.latent_dim, width=model_cfg.width,
                        num_classes=nc, adapter_dim=adapter_dim, rngs=g_rngs),
          projected.ProjectedDiscriminator(image_shape, width=model_cfg.d_width, num_classes=nc,
                                           network=model_cfg.features,
                                           feature_size=model_cfg.feature_size,
                                           scales=model_cfg.scales,
                                           feature_norm=model_cfg.get("feature_norm", False),
                                           pixel_head=model_cfg.get("pixel_head", True),
                                           rngs=d_rngs))


def build_gan(model_cfg, image_shape, num_classes: int, key=None):
  """Returns (generator, discriminator) NNX modules for `model_cfg.name`.

  `key` (a jax PRNG key, may be traced) decides the initial weights.
  """
  key = jax.random.key(0) if key is None else key
  name = model_cfg.name
  nc = num_classes if model_cfg.conditional else 0
  g_rngs = nnx.Rngs(jax.random.fold_in(key, 0))
  d_rngs = nnx.Rngs(jax.random.fold_in(key, 1))
  if name == "mlp_seed":
    if model_cfg.adapter_dim:
      raise ConfigError("model.adapter_dim: the seed's networks have no adapters (use mlp or dcgan)")
    if nc:
      raise ConfigError("model mlp_seed is the seed's unconditional GAN: set model.conditional=False")
    return (SeedGenerator(image_shape, latent_dim=model_cfg.latent_dim, hidden=model_cfg.width,
                          rngs=g_rngs),
            SeedDiscriminator(image_shape, hidden=model_cfg.width, rngs=d_rngs))
  adapter_dim = model_cfg.adapter_dim
  if name == "mlp":
    return (MLPGenerator(image_shape, latent_dim=model_cfg.latent_dim, width=model_cfg.width,
                         depth=model_cfg.depth, num_classes=nc, adapter_dim=adapter_dim,
                         rngs=g_rngs),
            MLPDiscriminator(image_shape, width=model_cfg.width, depth=model_cfg.depth,
                             num_classes=nc, adapter_dim=adapter_dim, rngs=d_rngs))
  if name == "tracks":
    return (TrackGenerator(image_shape, tracks=model_cfg.get("tracks", 4),
                           latent_dim=model_cfg.latent_dim, width=model_cfg.width,
                           depth=model_cfg.depth, num_classes=nc, adapter_dim=adapter_dim,
                           rngs=g_rngs),
            MLPDiscriminator(image_shape, width=model_cfg.width, depth=model_cfg.depth,
                             num_classes=nc, adapter_dim=adapter_dim,
                             fold=model_cfg.get("fold", 0), rngs=d_rngs))
  if name == "dcgan":
    return (ConvGenerator(image_shape, latent_dim=model_cfg.latent_dim, width=model_cfg.width,
                          num_classes=nc, adapter_dim=adapter_dim, rngs=g_rngs),
            ConvDiscriminator(image_shape, width=model_cfg.width, num_classes=nc,
                              adapter_dim=adapter_dim, rngs=d_rngs))
  if name == "dcgan_torch":
    return _tutorial_pair(model_cfg, image_shape, nc, adapter_dim, g_rngs, d_rngs)
  if name == "projected":
    return _projected_pair(model_cfg, image_shape, nc, adapter_dim, g_rngs, d_rngs)
  if name == "stylegan2":
    return stylegan.build(model_cfg, image_shape, nc, g_rngs, d_rngs)
  if name == "stylegan2_ada":
    from artjax.image.models import stylegan2_ada
    return stylegan2_ada.build(model_cfg, image_shape, nc, g_rngs, d_rngs)
  raise ConfigError(f"unknown model {name!r}; choose one of {GAN_MODELS}")
