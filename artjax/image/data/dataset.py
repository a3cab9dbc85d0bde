"""The in-memory form of every image dataset: whole splits as uint8 NHWC arrays."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """A labelled image dataset, every split as uint8 NHWC arrays."""
  name: str
  splits: dict  # split name -> (images uint8 [N,H,W,C], labels int32 [N])
  num_classes: int
  #: per split, more per-example arrays (emoji: "style", "key"), aligned with the images
  meta: dict = dataclasses.field(default_factory=dict)
  #: the classes' names, when they have names (emoji categories, a folder's subfolders)
  class_names: tuple = ()

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.splits["train"][0].shape[1:])

  def images(self, split: str) -> np.ndarray:
    return self.splits[split][0]

  def labels(self, split: str) -> np.ndarray:
    return self.splits[split][1]
