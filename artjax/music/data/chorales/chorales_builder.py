"""Bach's four-part chorales (music21's bundled corpus) as a TensorFlow-Datasets builder.

Nothing is downloaded: music21 ships the chorales as MusicXML (371 Riemenschneider
numbers, 350 distinct files: repeated harmonisations are kept once). The first
preparation parses all of them (about 20 s with 2 worker processes on 2 cores) and
writes array_record files; later loads read those.

Features per chorale (see `artjax.music.data.chorales.parse`); TFDS without TensorFlow needs
fixed shapes, so the arrays are padded to MAX_QUARTERS and carry their length:
  voices int32 [4*MAX_QUARTERS, 4]  SATB at 16th notes: MIDI pitch at an onset, 128 = hold,
                                    129 = rest (also the padding)
  roll   uint8 [MAX_QUARTERS, 88]   piano roll at quarter notes (MIDI 21..108), JSB layout
  length int32                      quarters (the roll's real length; voices: 4x)
  bwv    int32 [2]        BWV number and sub-number (153.5 -> [153, 5])
  tonic  int32            key tonic pitch class (music21 key analysis); mode: 0 major, 1 minor
  time_signature int32 [2]

Split (fixed, chorale level, by BWV number): crc32(str(BWV major number)) % 5 gives
0, 1, 2 -> train, 3 -> validation, 4 -> test (about 60/20/20). All harmonisations sharing a
BWV number land in the same split, so no chorale tune is in two splits through them.
A file that fails to parse is skipped; the count and the files are in the dataset's
metadata (`skipped`) and logged.
"""

from __future__ import annotations

import logging
import zlib

import numpy as np
import tensorflow_datasets as tfds

from artjax.music.data.chorales import parse

SPLITS = ("train", "validation", "test")
MAX_QUARTERS = 256   # the longest chorale in the corpus has 193


def split_of(bwv_major: int) -> str:
  r = zlib.crc32(str(int(bwv_major)).encode()) % 5
  return "train" if r < 3 else ("validation" if r == 3 else "test")


def collect(paths, processes: int | None = None):
  """Parses `paths`; returns (parsed list, skipped list) and warns about each skipped file."""
  ok, bad = parse.parse_all(paths, processes)
  for path, err in bad:
    logging.warning("skipping chorale %s: %s", path, err)
  if bad:
    logging.warning("skipped %d of %d chorales that failed to parse", len(bad), len(paths))
  return ok, bad


class Builder(tfds.core.GeneratorBasedBuilder):
  """music21's Bach chorales: SATB voices, piano roll and metadata."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: split by crc32(BWV) % 5."}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "voices": tfds.features.Tensor(shape=(4 * MAX_QUARTERS, 4), dtype=np.int32),
            "roll": tfds.features.Tensor(shape=(MAX_QUARTERS, parse.NUM_KEYS), dtype=np.uint8),
            "length": tfds.features.Tensor(shape=(), dtype=np.int32),
            "bwv": tfds.features.Tensor(shape=(2,), dtype=np.int32),
            "tonic": tfds.features.Tensor(shape=(), dtype=np.int32),
            "mode": tfds.features.Tensor(shape=(), dtype=np.int32),
            "time_signature": tfds.features.Tensor(shape=(2,), dtype=np.int32),
        }),
        homepage="https://web.mit.edu/music21/doc/moduleReference/moduleCorpusChorales.html",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager   # music21 ships the corpus.
    ok, bad = collect(parse.chorale_paths())
    too_long = [(p, f"{len(r['roll'])} quarters > {MAX_QUARTERS}") for p, r in ok
                if len(r["roll"]) > MAX_QUARTERS]
    ok = [(p, r) for p, r in ok if len(r["roll"]) <= MAX_QUARTERS]
    bad = bad + too_long
    self.info.metadata["skipped"] = [[p, e] for p, e in bad]
    self.info.metadata["parsed"] = len(ok)
    by_split = {s: [] for s in SPLITS}
    for path, rec in ok:
      by_split[split_of(rec["bwv"][0])].append((path, rec))
    return {s: self._generate_examples(items) for s, items in by_split.items()}

  def _generate_examples(self, items):
    for path, rec in items:
      n = len(rec["roll"])
      voices = np.full((4 * MAX_QUARTERS, 4), parse.REST, np.int32)
      voices[:len(rec["voices"])] = rec["voices"]
      roll = np.zeros((MAX_QUARTERS, parse.NUM_KEYS), np.uint8)
      roll[:n] = rec["roll"]
      yield str(path), dict(rec, voices=voices, roll=roll, length=np.int32(n))
