"""The image datasets a task config can name, across domains: the image domain's (digits,
TFDS canonical sets) and the music domain's piano rolls seen as images (the music GAN's
`chorale_rolls`). Shapes and classes are known without loading, so configs are checked
before any I/O."""

from __future__ import annotations

from artjax import ConfigError
from artjax.image import data as image_data
from artjax.music import data as music_data

KNOWN_SHAPES = {**image_data.KNOWN_SHAPES, **music_data.ROLL_SHAPES}
KNOWN_CLASSES = {**image_data.KNOWN_CLASSES, **music_data.ROLL_CLASSES}
NAMES = image_data.BUNDLED + music_data.ROLL_DATASETS + image_data.KNOWN_TFDS


def check_dataset_name(name: str) -> None:
  if name not in NAMES:
    raise ConfigError(f"unknown dataset {name!r}; choose one of {NAMES}")


def load_images(name: str, data_dir: str | None = None) -> image_data.ImageDataset:
  """The whole image dataset `name` in host memory (cached per process)."""
  check_dataset_name(name)
  if name in music_data.ROLL_DATASETS:
    return music_data.chorale_rolls(data_dir)
  return image_data.load_images(name, data_dir)
