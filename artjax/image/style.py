"""Style-transfer losses and the optimisation (Gatys et al. 2016) as one compiled program.

Losses are relative (scale-free): the style loss of a layer is ||G(x) - G*||^2 / ||G*||^2 for
Gram matrices G, the content loss ||F(x) - F(c)||^2 / ||F(c)||^2, so weights mean the same for
every feature network. The optimisation runs coarse to fine: at each scale one `lax.scan` of
Adam (or L-BFGS) steps on the pixels, the result upsampled to start the next scale; all scales
are one jitted function.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from artjax.image import color
from artjax.image.models import features as fnet
from artjax.nn.precision import _t, bf16_bmm

F32 = jnp.float32


@dataclasses.dataclass(frozen=True)
class Settings:
  """Static settings of one optimisation (hashable)."""
  steps: tuple = (200, 100, 50)        # iterations per scale, coarse to fine
  optimizer: str = "adam"              # adam | lbfgs
  lr: float = 0.02                     # Adam step on pixels in [0, 1]
  content_weight: float = 1.0
  style_weight: float = 2.0
  tv_weight: float = 0.0
  preserve_color: bool = False


def gram(f, weight=None, dtype="fp32"):
  """Gram matrices [B, C, C] of feature maps [B, h, w, C]: F^T F / n, or with per-position
  weights [B, h, w] (a mask): (w F)^T F / sum(w)."""
  b, h, w, c = f.shape
  flat = f.reshape(b, h * w, c)
  left = flat if weight is None else flat * weight.reshape(b, h * w, 1)
  norm = h * w if weight is None else jnp.maximum(weight.reshape(b, -1).sum(-1), 1e-6)[:, None, None]
  if dtype == "bf16":
    return bf16_bmm(_t(left), flat) / norm
  return jnp.einsum("bnc,bnd->bcd", left, flat, preferred_element_type=F32) / norm


def moments(f, weight=None, dtype="fp32"):
  """(mean [B, C], second moment (Gram) [B, C, C]) of feature maps, optionally weighted."""
  b, h, w, c = f.shape
  if weight is None:
    mean = f.mean((1, 2))
  else:
    wsum = jnp.maximum(weight.reshape(b, -1).sum(-1), 1e-6)[:, None]
    mean = jnp.einsum("bhwc,bhw->bc", f, weight) / wsum
  return mean, gram(f, weight, dtype)


def covariance(mean, second):
  return second - mean[:, :, None] * mean[:, None, :]


def pool_to(mask, shape):
  """A [B, H, W] mask resized to feature resolution (h, w) (area average)."""
  b, h0, w0 = mask.shape
  h, w = shape
  if (h0, w0) == (h, w):
    return mask
  if h0 % h == 0 and w0 % w == 0:
    return mask.reshape(b, h, h0 // h, w, w0 // w).mean((2, 4))
  return jax.image.resize(mask, (b, h, w), "linear")


def style_targets(net, params, style_images, weights):
  """Moments of a mixture of styles per style layer: [(mean, Gram)], each the weighted sum
  over the styles (the moments of the pooled feature distribution). `style_images`: a list of
  [1, h, w, 3] (sizes may differ)."""
  targets = None
  for im, wt in zip(style_images, weights):
    feats = fnet.apply(net, params, im)
    mom = [tuple(wt * m for m in moments(feats[i], dtype=net.dtype)) for i in net.style]
    targets = mom if targets is None else [(a[0] + m[0], a[1] + m[1]) for a, m in zip(targets, mom)]
  return targets


def _rel(x, target):
  """Per-image relative squared error [B] (target [B or 1, ...] broadcast)."""
  axes = tuple(range(1, x.ndim))
  num = jnp.sum((x - target) ** 2, axes)
  return num / jnp.maximum(jnp.sum(target ** 2, axes), 1e-12)


def per_image_losses(net, params, x, content_feats, targets, mask=None):
  """([B] style, [B] content) relative losses of images x [B, H, W, 3] in [0, 1]; the content
  features [B or 1, ...], the targets [(mean, Gram)] broadcast over the batch; `mask` [B, H, W]
  weights the style statistics. The style loss of a layer matches the feature covariance and
  the mean separately (each relative), so the texture's second-order structure is not drowned
  by the mean's outer product."""
  feats = fnet.apply(net, params, x)
  style = []
  for (t_mean, t_second), i in zip(targets, net.style):
    wgt = None if mask is None else pool_to(mask, feats[i].shape[1:3])
    mean, second = moments(feats[i], wgt, net.dtype)
    style.append(_rel(covariance(mean, second), covariance(t_mean, t_second)) + _rel(mean, t_mean))
  content = [_rel(feats[i], c) for i, c in zip(net.content, content_feats)]
  return jnp.mean(jnp.stack(style), 0), jnp.mean(jnp.stack(content), 0)


def losses(net, params, x, content_feats, targets, mask=None):
  """(style, content): `per_image_losses` averaged over the batch."""
  st, co = per_image_losses(net, params, x, content_feats, targets, mask)
  return st.mean(), co.mean()


def total_variation(x):
  return jnp.mean(jnp.abs(x[:, 1:] - x[:, :-1])) + jnp.mean(jnp.abs(x[:, :, 1:] - x[:, :, :-1]))


def _to_rgb(y, chroma):
  """Luminance [B, H, W, 1] + content chroma [B, H, W, 2] -> RGB."""
  return color.yiq_to_rgb(jnp.concatenate([y, chroma], -1))


def _scale_problem(net, params, s: Settings, content, styles, style_mix, mask):
  """The loss of one scale as a function of the free variable, and how to read the image.

  Colour preservation optimises luminance only (styles luminance-matched to the content);
  a mask blends the free image with the content, so outside it the content stays exact."""
  yiq = color.rgb_to_yiq(content)
  if s.preserve_color:
    y_c = yiq[..., :1]
    styles = [jnp.repeat(color.match_luminance(color.rgb_to_yiq(im)[..., :1], y_c), 3, -1)
              for im in styles]
    fixed, chroma = y_c, yiq[..., 1:]
    to_image = lambda v: _to_rgb(v, chroma)
    features_in = lambda v: jnp.repeat(v, 3, -1)
  else:
    fixed = content
    to_image = features_in = lambda v: v
  m = None if mask is None else mask[..., None]
  blend = (lambda v: v) if m is None else (lambda v: m * v + (1.0 - m) * fixed)
  c_feats = [f for i, f in enumerate(fnet.apply(net, params, features_in(fixed))) if i in net.content]
  targets = style_targets(net, params, styles, style_mix)

  def loss_fn(v):
    img = features_in(blend(v))
    st, co = losses(net, params, img, c_feats, targets, mask)
    tv = total_variation(img) if s.tv_weight else 0.0
    return s.style_weight * st + s.content_weight * co + s.tv_weight * tv, (st, co)

  return loss_fn, fixed, lambda v: jnp.clip(to_image(blend(v)), 0.0, 1.0)


def _optimise(loss_fn, v0, steps, s: Settings, tick):
  """`steps` iterations from v0 in one scan; returns (v, [steps, 3] total/style/content)."""
  if s.optimizer == "lbfgs":
    tx = optax.lbfgs()
    value_fn = lambda v: loss_fn(v)[0]
    vg = optax.value_and_grad_from_state(value_fn)

    def body(carry, i):
      v, opt = carry
      value, grad = vg(v, state=opt)
      upd, opt = tx.update(grad, opt, v, value=value, grad=grad, value_fn=value_fn)
      tick(i)
      return (optax.apply_updates(v, upd), opt), jnp.stack([value, value, value])
  else:
    tx = optax.adam(s.lr)

    def body(carry, i):
      v, opt = carry
      (value, (st, co)), grad = jax.value_and_grad(loss_fn, has_aux=True)(v)
      upd, opt = tx.update(grad, opt, v)
      tick(i)
      return (jnp.clip(optax.apply_updates(v, upd), -0.5, 1.5), opt), jnp.stack([value, st, co])

  (v, _), trace = lax.scan(body, (v0, tx.init(v0)), jnp.arange(steps))
  return v, trace


def resize_like(x, shape):
  return jax.image.resize(x, shape[:-1] + x.shape[-1:], "bilinear")


def stylize(net, params, s: Settings, contents, styles, style_mix, masks, noise,
            tick: Callable = lambda i: None):
  """The whole coarse-to-fine optimisation (pure; jit it with `net`, `s` static).

  contents: per scale [1, h, w, 3]; styles: per scale a list of [1, h', w', 3]; style_mix:
  per-style weights; masks: per scale [1, h, w] or None; noise: [1, h0, w0, 3] at the
  coarsest scale ("noise" init) or None (start from the content). Returns (image at the
  finest scale [1, H, W, 3], per-scale loss traces)."""
  v, traces = None, []
  for k, steps in enumerate(s.steps):
    loss_fn, fixed, read = _scale_problem(net, params, s, contents[k], styles[k], style_mix,
                                          None if masks is None else masks[k])
    if v is None:
      v = fixed if noise is None else (color.rgb_to_yiq(noise)[..., :1] if s.preserve_color else noise)
    else:
      v = resize_like(v, fixed.shape)
    v, trace = _optimise(loss_fn, v, steps, s, tick)
    traces.append(trace)
  return read(v), traces


def morph_weights(num_styles: int, num_frames: int) -> np.ndarray:
  """[F, S] style weights of a morph through the styles in order: frame f sits at
  t = f / (F - 1) of the way, linear between the two styles around it."""
  t = np.linspace(0.0, num_styles - 1.0, num_frames)
  lo = np.minimum(np.floor(t).astype(int), num_styles - 2)
  out = np.zeros((num_frames, num_styles), np.float32)
  out[np.arange(num_frames), lo] = 1.0 - (t - lo)
  out[np.arange(num_frames), lo + 1] = t - lo
  return out


def morph(net, params, s: Settings, content, styles, mixes, v0, steps: int, warm: bool = True):
  """Frames of a style morph (pure; one scan): for each row of `mixes` [F, S] (the weights
  of the target feature statistics), `steps` iterations at one scale, from the previous
  frame's image when `warm` (so the morph does not flicker), else from the content.
  content: [1, h, w, 3]; styles: a list of [1, h', w', 3]; v0: the image the first frame
  starts from. Returns (the last image, frames [F, h, w, 3] in [0, 1])."""
  def frame(v, mix):
    loss_fn, fixed, read = _scale_problem(net, params, s, content, styles, mix, None)
    start = v if warm else fixed
    if s.preserve_color and warm:
      start = color.rgb_to_yiq(v)[..., :1]
    out, _ = _optimise(loss_fn, start, steps, s, lambda i: None)
    image = read(out)
    return image, image[0]
  return lax.scan(frame, v0, jnp.asarray(mixes))
