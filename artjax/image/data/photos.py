"""Photographs for content crops: scikit-image's bundled samples (offline) and any folder of
the user's images. Each photo becomes a square (centre crop) of `size` pixels, uint8."""

from __future__ import annotations

import glob
import os

import numpy as np

from artjax import ConfigError

SKIMAGE_PREFIX = "skimage:"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def skimage_names() -> tuple:
  from skimage import data
  return tuple(n for n in ("astronaut", "brick", "camera", "cat", "chelsea", "coffee", "grass",
                           "gravel", "hubble_deep_field", "immunohistochemistry", "retina",
                           "rocket") if hasattr(data, n))


def read_named(name: str) -> np.ndarray:
  """`skimage:NAME` or a file path -> float32 [H, W, 3] in [0, 1] (a ConfigError if missing)."""
  from artjax.image import io
  if name.startswith(SKIMAGE_PREFIX):
    key = name[len(SKIMAGE_PREFIX):]
    if key not in skimage_names():
      raise ConfigError(f"unknown scikit-image sample {key!r}; choose one of {skimage_names()}")
    from skimage import data
    return io.from_array(getattr(data, key)())
  return io.read_image(name, "image")


def check_named(name: str) -> None:
  if name.startswith(SKIMAGE_PREFIX):
    if name[len(SKIMAGE_PREFIX):] not in skimage_names():
      raise ConfigError(f"unknown scikit-image sample {name!r}; choose one of {skimage_names()}")
  elif not os.path.isfile(name):
    raise ConfigError(f"image {name} does not exist")


def folder_images(folder: str) -> list:
  if not os.path.isdir(folder):
    raise ConfigError(f"data.folder: {folder} is not a directory")
  files = sorted(f for f in glob.glob(os.path.join(folder, "*")) if f.lower().endswith(IMAGE_EXTENSIONS))
  if not files:
    raise ConfigError(f"data.folder: no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
  return files


def square(image: np.ndarray, size: int) -> np.ndarray:
  """Centre square crop resized to size x size, uint8."""
  from artjax.image import io
  h, w = image.shape[:2]
  s = min(h, w)
  y, x = (h - s) // 2, (w - s) // 2
  return io.to_uint8(io.resize_to(image[y:y + s, x:x + s], (size, size)))


def load_squares(names, size: int) -> np.ndarray:
  """uint8 [N, size, size, 3] of `skimage:NAME` / paths."""
  return np.stack([square(read_named(n), size) for n in names])
