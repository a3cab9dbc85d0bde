"""The image datasets a task config can name, across domains: the image domain's (digits,
emoji, a user's `folder:PATH`, TFDS canonical sets) and the music domain's piano rolls seen
as images (the music GAN's `chorale_rolls`). Shapes and classes are known without loading
pictures, so configs are checked before any data is prepared."""

from __future__ import annotations

from artjax.image import data as image_data
from artjax.music import data as music_data

ROLLS = music_data.ROLL_DATASETS


def check_dataset_name(name: str) -> None:
  if name not in ROLLS:
    image_data.check_dataset_name(name)


def image_shape(d) -> tuple:
  """[H, W, C] of data config `d`'s images."""
  return music_data.ROLL_SHAPES[d.name] if d.name in ROLLS else image_data.image_shape(d)


def num_classes(d) -> int:
  return music_data.ROLL_CLASSES[d.name] if d.name in ROLLS else image_data.num_classes(d)


def load(d) -> image_data.ImageDataset:
  """The whole image dataset of data config `d` in host memory (cached per process)."""
  check_dataset_name(d.name)
  if d.name in ROLLS:
    return music_data.chorale_rolls(d.data_dir or None, d.name)
  return image_data.load(d)
