"""YIQ colour space (NTSC): luminance Y and chroma I, Q; used to transfer style on luminance
only and keep the content's colours (Gatys et al. 2016, "Preserving color in neural artistic
style transfer")."""

from __future__ import annotations

import numpy as np

RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                       [0.595716, -0.274453, -0.321263],
                       [0.211456, -0.522591, 0.311135]], np.float32)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ).astype(np.float32)


def rgb_to_yiq(rgb):
  """[..., 3] RGB -> [..., 3] YIQ (works on numpy and jax arrays)."""
  return rgb @ RGB_TO_YIQ.T


def yiq_to_rgb(yiq):
  return yiq @ YIQ_TO_RGB.T


def match_luminance(y_style, y_content):
  """Style luminance shifted and scaled to the content luminance's mean and std."""
  s_mu, s_sd = y_style.mean(), y_style.std() + 1e-6
  return (y_style - s_mu) * (y_content.std() / s_sd) + y_content.mean()
