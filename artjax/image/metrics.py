"""Style-transfer quality, scored with networks the optimisation never saw.

* `style_distance`: the relative Frobenius difference of centred Gram matrices (feature
  covariances), averaged over the layers of a *held-out* random network (another seed and other
  filter sizes than any optimised: scoring with the optimised network would game the metric).
* `content_ssim`: SSIM of the luminance against the content image (structure kept).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from artjax.image import color
from artjax.image.models import features as fnet

HELDOUT_SEED = 20170424
# Full-resolution single-layer filters of sizes no optimised default uses.
HELDOUT = fnet.random_multiscale(sizes=(4, 9, 13, 19, 27), maps=96, levels=(0,))


def _centred_gram(f):
  b, h, w, c = f.shape
  flat = f.reshape(b, h * w, c)
  flat = flat - flat.mean(1, keepdims=True)
  return jnp.einsum("bnc,bnd->bcd", flat, flat) / (h * w)


@jax.jit
def _grams(params, image):
  return [_centred_gram(f)[0] for f in fnet.apply(HELDOUT, params, image[None])]


_PARAMS = {}


def heldout_grams(image: np.ndarray) -> list:
  """Centred Grams of the held-out network for a float [H, W, 3] image in [0, 1]."""
  if "p" not in _PARAMS:
    _PARAMS["p"] = jax.tree.map(jnp.asarray, fnet.init(HELDOUT, HELDOUT_SEED))
  return [np.asarray(g, np.float64) for g in _grams(_PARAMS["p"], jnp.asarray(image, jnp.float32))]


def style_distance(image: np.ndarray, style: np.ndarray) -> float:
  """Mean over held-out layers of ||Gc(image) - Gc(style)||_F / ||Gc(style)||_F."""
  a, b = heldout_grams(image), heldout_grams(style)
  return float(np.mean([np.linalg.norm(x - y) / np.linalg.norm(y) for x, y in zip(a, b)]))


def content_ssim(image: np.ndarray, content: np.ndarray) -> float:
  """SSIM of the YIQ luminance (data range 1)."""
  from skimage.metrics import structural_similarity
  y1 = color.rgb_to_yiq(np.asarray(image, np.float32))[..., 0]
  y2 = color.rgb_to_yiq(np.asarray(content, np.float32))[..., 0]
  return float(structural_similarity(y1, y2, data_range=1.0))


def histogram_matched(content: np.ndarray, style: np.ndarray) -> np.ndarray:
  """The baseline: the content's colour histogram matched to the style's, per channel."""
  from skimage.exposure import match_histograms
  return np.clip(match_histograms(content, style, channel_axis=-1), 0, 1).astype(np.float32)
