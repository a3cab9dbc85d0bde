"""The projected GAN's discriminator (Sauer et al., NeurIPS 2021): small discriminators on the
multi-scale features of a frozen ImageNet network, seen through fixed random projections.

Images (in [-1, 1], after DiffAugment) are resized bilinearly to `feature_size` px and passed
through pretrained EfficientNet-Lite0 (`artjax.image.pretrained`), whose four stage outputs
(strides 4, 8, 16, 32) are mixed by fixed random maps: a 1x1 cross-channel mixing (CCM) per
scale, and a top-down cross-scale mixing (CSM: each scale plus the 2x-upsampled, 1x1-mapped
coarser one), each location's channels normalised. Neither the feature network nor the projections are trained: they are listed in
`frozen` (the task's optimizer gives them zero updates and keeps no state for them) and read
through `stop_gradient`, so the discriminator's gradient flows to its input -- the generator
-- and into the per-scale heads only. Each head halves its map with 4x4 stride-2 convolutions
down to at most 4x4 and scores every location (a class projection term when conditional); an
image's logit is the mean over locations and scales.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from artjax.image import pretrained
from artjax.image.models import efficientnet
from artjax.nn import logical
from artjax.nn.precision import Conv, Embed


def _lrelu(x):
  return jax.nn.leaky_relu(x, 0.2)


def _channel_norm(h, eps=1e-5):
  """Each location's channels to zero mean, unit variance (no parameters, no batch mixing):
  the heads see features of one scale whatever the network's and projections' gains."""
  mu = jnp.mean(h, axis=-1, keepdims=True)
  return (h - mu) * jax.lax.rsqrt(jnp.var(h, axis=-1, keepdims=True) + eps)


class _Fixed(nnx.Module):
  """A random 1x1 projection [I, O] (He-scaled), never trained."""

  def __init__(self, cin: int, cout: int, rngs: nnx.Rngs):
    self.kernel = nnx.Param(jax.random.normal(rngs.params(), (cin, cout)) * (2.0 / cin) ** 0.5)

  def __call__(self, x):
    k = jax.lax.stop_gradient(self.kernel[...]).astype(x.dtype)
    return jnp.einsum("bhwc,cd->bhwd", x, k, preferred_element_type=jnp.float32)


class _Head(nnx.Module):
  """4x4 stride-2 convolutions down to <= 4x4, then a 1x1 convolution to a logit per location
  (+ <embed(y), h> per location when conditional)."""

  def __init__(self, cin: int, size: int, width: int, num_classes: int, index: int, rngs):
    downs, c = [], cin
    while size > 4:
      downs.append(Conv(c, width, (4, 4), strides=(2, 2), axes=logical.conv(index), rngs=rngs))
      c, size = width, size // 2
    self.downs = nnx.List(downs)
    self.out = Conv(c, 1, (1, 1), axes=logical.conv(index), rngs=rngs)
    self.embed = Embed(num_classes, c, rngs=rngs) if num_classes else None

  def __call__(self, h, labels):
    for conv in self.downs:
      h = _lrelu(conv(h))
    logits = self.out(h)[..., 0]
    if self.embed is not None:
      logits = logits + jnp.einsum("bhwc,bc->bhw", h, self.embed(labels).astype(h.dtype))
    return jnp.mean(logits, axis=(1, 2))


class ProjectedDiscriminator(nnx.Module):
  #: parts whose weights are fixed: not trained, no optimizer state (artjax.engine.optim.freeze)
  frozen = ("features", "ccm", "csm")

  def __init__(self, image_shape, *, width: int = 64, num_classes: int = 0,
               network: str = "lite0", feature_size: int = 64, scales: int = 4,
               feature_norm: bool = False, pixel_head: bool = True, rngs: nnx.Rngs):
    if image_shape[-1] not in (1, 3):
      raise ValueError(f"the projected discriminator sees RGB or grey pictures, not {image_shape}")
    self.feature_size, self.feature_norm = feature_size, feature_norm
    self.features = pretrained.load(network, features_only=True)
    chans = self.features.stage_channels[:scales]
    self.last_stage = efficientnet.FEATURE_STAGES[scales - 1]
    proj = [min(width * 2 ** i, 8 * width) for i in range(len(chans))]
    self.ccm = nnx.List([_Fixed(c, p, rngs) for c, p in zip(chans, proj)])
    self.csm = nnx.List([_Fixed(proj[i + 1], proj[i], rngs) for i in range(len(chans) - 1)])
    sizes = [-(-feature_size // s) for s in (4, 8, 16, 32)[:scales]]
    self.heads = nnx.List([_Head(p, s, p, num_classes, i, rngs)
                           for i, (p, s) in enumerate(zip(proj, sizes))])
    # a head on the pixels themselves: ImageNet features are nearly blind to hue and flat
    # colour, which an emoji is made of (without it the colours drift and collapse)
    self.pixel = (_Head(image_shape[-1], max(image_shape[0], image_shape[1]), width,
                        num_classes, len(chans), rngs) if pixel_head else None)
    self.layer_order = tuple(f"heads.{i}" for i in range(len(chans))) + (
        ("pixel",) if pixel_head else ())

  def project(self, x):
    """The mixed multi-scale features of images x [B, H, W, C] in [-1, 1]."""
    b, _, _, c = x.shape
    s = self.feature_size
    x = jax.image.resize(x.astype(jnp.float32), (b, s, s, c), "linear", antialias=False)
    if c == 1:
      x = jnp.repeat(x, 3, axis=-1)
    net = jax.tree.map(jax.lax.stop_gradient, nnx.state(self.features))
    feats = nnx.merge(nnx.graphdef(self.features), net).stages((x + 1.0) * 127.5,
                                                                     self.last_stage)
    mixed = [ccm(f) for ccm, f in zip(self.ccm, feats)]
    for i in range(len(mixed) - 2, -1, -1):       # top-down: coarse scales into finer ones
      up = self.csm[i](mixed[i + 1])
      up = jax.image.resize(up, mixed[i].shape[:3] + up.shape[3:], "nearest")
      mixed[i] = mixed[i] + up
    return [_channel_norm(h) for h in mixed] if self.feature_norm else mixed

  def __call__(self, x, labels=None):
    scores = [head(h, labels) for head, h in zip(self.heads, self.project(x))]
    if self.pixel is not None:
      scores.append(self.pixel(x.astype(jnp.float32), labels))
    return jnp.mean(jnp.stack(scores), axis=0)
