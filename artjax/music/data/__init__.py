"""Bach chorales (music21's corpus, prepared once by the TFDS builder in `chorales/`) and
their 2-bar piano-roll segments as an image dataset (the music GAN's data)."""

from __future__ import annotations

import dataclasses

import numpy as np

from artjax import ConfigError

from artjax.engine import data as data_lib
from artjax.image.data import ImageDataset

# images that are piano rolls [quarter-note frames, 88 keys]: 2 bars, or 4 bars (music21
# hears 0.77 of held-out minor 4-bar segments as minor, 0.66 of 2-bar ones: docs/music.md)
# chorale_rolls16c: the 4-bar segments moved to C (each chorale by the nearest shift of its
# tonic to C, as configs/music.py:keynorm does), so the mode is the only thing the key tells
ROLL_DATASETS = ("chorale_rolls", "chorale_rolls16", "chorale_rolls16c")
ROLL_FRAMES = {"chorale_rolls": 8, "chorale_rolls16": 16, "chorale_rolls16c": 16}
ROLL_SHAPES = {n: (f, 88, 1) for n, f in ROLL_FRAMES.items()}
ROLL_CLASSES = {n: 2 for n in ROLL_DATASETS}


@dataclasses.dataclass(frozen=True)
class Chorales:
  """Bach chorales per split: piano rolls (uint8 [Tq, 88]), SATB voices (int32 [T16, 4]),
  mode (0 major, 1 minor), tonic pitch class, BWV numbers."""
  splits: dict   # split -> dict(rolls=list, voices=list, mode=[N], tonic=[N], bwv=[N,2])

  def rolls(self, split: str) -> list:
    return self.splits[split]["rolls"]

  def modes(self, split: str) -> np.ndarray:
    return self.splits[split]["mode"]


def load_chorales(data_dir: str | None = None) -> Chorales:
  """The chorales builder's splits, prepared on first use (about 20 s), cached per process."""
  data_dir = data_dir or data_lib.default_data_dir()
  key = ("chorales", data_dir)
  if key in data_lib.CACHE:
    return data_lib.CACHE[key]
  import importlib.util
  if importlib.util.find_spec("music21") is None:   # the corpus ships inside music21
    raise ConfigError("the chorales dataset needs music21: pip install music21")
  from artjax.music.data.chorales import Builder
  builder = Builder(data_dir=data_dir, file_format="array_record")
  data_lib.prepare_once(builder)
  src = builder.as_data_source()
  splits = {}
  for k in ("train", "validation", "test"):
    recs = src[k].__getitems__(list(range(len(src[k]))))
    n = [int(r["length"]) for r in recs]
    splits[k] = {"rolls": [np.asarray(r["roll"][:m], np.uint8) for r, m in zip(recs, n)],
                 "voices": [np.asarray(r["voices"][:4 * m], np.int32) for r, m in zip(recs, n)],
                 "mode": np.asarray([int(r["mode"]) for r in recs], np.int32),
                 "tonic": np.asarray([int(r["tonic"]) for r in recs], np.int32),
                 "bwv": np.asarray([r["bwv"] for r in recs], np.int32)}
  ds = Chorales(splits)
  data_lib.CACHE[key] = ds
  return ds


SEGMENT_FRAMES, SEGMENT_STRIDE = 8, 2


def _in_c(roll, tonic):
  """A piano roll [T, 88] moved by encoding.tonic_shift(tonic) semitones (keys pushed off the
  keyboard are dropped)."""
  from artjax.music.encoding import tonic_shift
  k = int(tonic_shift(int(tonic)))
  out = np.zeros_like(roll)
  if k >= 0:
    out[:, k:] = roll[:, :roll.shape[1] - k]
  else:
    out[:, :k] = roll[:, -k:]
  return out


def chorale_segments(ch: Chorales, frames: int = SEGMENT_FRAMES, stride: int = SEGMENT_STRIDE,
                     name: str = "chorale_rolls", in_c: bool = False) -> ImageDataset:
  """Piano-roll segments as images: 2 bars of 4/4 (8 quarter-note frames) x 88 keys, uint8
  0/255, labelled by the chorale's mode (0 major, 1 minor), every `stride` frames of every
  chorale of each split. The music GAN's data ("chorale_rolls"); `in_c`: each chorale moved
  to C first."""
  splits = {}
  for k in ("train", "validation", "test"):
    ims, lbs = [], []
    rolls = ch.rolls(k)
    if in_c:
      rolls = [_in_c(r, t) for r, t in zip(rolls, ch.splits[k]["tonic"])]
    for roll, mode in zip(rolls, ch.modes(k)):
      for s in range(0, len(roll) - frames + 1, stride):
        ims.append(roll[s:s + frames])
        lbs.append(mode)
    splits[k] = (np.stack(ims)[..., None] * np.uint8(255), np.asarray(lbs, np.int32))
  return ImageDataset(name, splits, 2, class_names=("major", "minor"))




def chorale_rolls(data_dir: str | None = None, name: str = "chorale_rolls") -> ImageDataset:
  """A piano-roll image dataset of ROLL_DATASETS (cached per process)."""
  key = (name, data_dir or data_lib.default_data_dir())
  if key not in data_lib.CACHE:
    data_lib.CACHE[key] = chorale_segments(load_chorales(data_dir), frames=ROLL_FRAMES[name],
                                           name=name, in_c=name.endswith("c"))
  return data_lib.CACHE[key]
