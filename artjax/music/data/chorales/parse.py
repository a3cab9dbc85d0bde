"""Parsing music21's bundled Bach chorales into arrays (no TensorFlow, no network).

One chorale becomes:
  voices  int16 [T16, 4]  soprano, alto, tenor, bass at 16th-note resolution; each cell is a
                          MIDI pitch where a note starts, HOLD where it continues, REST in a rest;
  roll    uint8 [Tq, 88]  the pitches sounding at each quarter-note beat (MIDI 21..108), the
                          layout of the JSB Chorales benchmark;
  metadata: BWV number (as "major.minor"), key tonic (pitch class) and mode (music21's
  Krumhansl-Schmuckler analysis), time signature.
"""

from __future__ import annotations

import math
import re

import numpy as np

HOLD, REST = 128, 129
LOWEST, NUM_KEYS = 21, 88          # piano keys A0..C8
STEPS_PER_QUARTER = 4
VOICE_NAMES = ("soprano", "alto", "tenor", "bass")


class ParseError(ValueError):
  """A chorale that cannot be turned into four voices on the 16th-note grid."""


def chorale_paths() -> list[str]:
  """The corpus's chorales in Riemenschneider order, each file once (music21 lists 371
  numbers; 21 of them repeat a harmonisation already listed, leaving 350 files)."""
  from music21 import corpus
  return list(dict.fromkeys(str(p) for p in corpus.chorales.Iterator(returnType="filename")))


def bwv_of(path: str) -> tuple[int, int]:
  """'bach/bwv153.5' -> (153, 5); (n, 0) without a sub-number."""
  m = re.search(r"bwv(\d+)(?:\.(\d+))?", str(path))
  if not m:
    raise ParseError(f"no BWV number in {path!r}")
  return int(m.group(1)), int(m.group(2) or 0)


def _four_parts(score):
  parts = list(score.parts)
  if len(parts) == 4:
    return parts
  named = {}
  for p in parts:
    name = (p.partName or p.id or "").lower()
    for v in VOICE_NAMES:
      if name.startswith(v) and v not in named:
        named[v] = p
  if len(named) == 4:
    return [named[v] for v in VOICE_NAMES]
  raise ParseError(f"{len(parts)} parts, not soprano/alto/tenor/bass")


def voices_of(score) -> np.ndarray:
  parts = _four_parts(score)
  length = int(math.ceil(float(score.highestTime) * STEPS_PER_QUARTER))
  if length <= 0:
    raise ParseError("empty score")
  out = np.full((length, 4), REST, np.int16)
  for v, part in enumerate(parts):
    for n in part.flatten().notes:
      if n.isChord:   # a divided voice: keep its top note
        pitch = max(p.midi for p in n.pitches)
      else:
        pitch = n.pitch.midi
      start = int(round(float(n.offset) * STEPS_PER_QUARTER))
      end = int(round(float(n.offset + n.quarterLength) * STEPS_PER_QUARTER))
      if end <= start:
        continue   # grace notes
      tied = n.tie is not None and n.tie.type in ("stop", "continue")
      out[start, v] = HOLD if tied and start > 0 and out[start - 1, v] != REST else pitch
      out[start + 1:end, v] = HOLD
  return out


def sounding(voices: np.ndarray) -> np.ndarray:
  """MIDI pitch sounding in each voice at each 16th step (-1 in rests)."""
  out = np.full(voices.shape, -1, np.int32)
  last = np.full(voices.shape[1], -1, np.int32)
  for t, row in enumerate(voices):
    last = np.where(row == HOLD, last, np.where(row == REST, -1, row))
    out[t] = last
  return out


def roll_of(voices: np.ndarray) -> np.ndarray:
  """Quarter-note piano roll [Tq, 88] sampled at each beat."""
  snd = sounding(voices)[::STEPS_PER_QUARTER]
  roll = np.zeros((len(snd), NUM_KEYS), np.uint8)
  for t, row in enumerate(snd):
    for p in row:
      if p >= 0:
        if not LOWEST <= p < LOWEST + NUM_KEYS:
          raise ParseError(f"pitch {p} outside the piano")
        roll[t, p - LOWEST] = 1
  return roll


def parse_file(path: str) -> dict:
  """Parses one chorale (a corpus path or a MusicXML file); raises on any failure."""
  from music21 import converter, corpus
  import os
  try:
    score = converter.parse(path) if os.path.exists(path) else corpus.parse(path)
  except Exception as e:  # music21 raises many kinds
    raise ParseError(f"music21 cannot parse it: {type(e).__name__}: {e}") from e
  voices = voices_of(score)
  roll = roll_of(voices)
  try:
    key = score.analyze("key")
    tonic, mode = key.tonic.pitchClass, 1 if key.mode == "minor" else 0
  except Exception as e:
    raise ParseError(f"key analysis failed: {e}") from e
  ts = score.recurse().getElementsByClass("TimeSignature")
  num, den = (ts[0].numerator, ts[0].denominator) if len(ts) else (4, 4)
  major, minor = bwv_of(path)
  return {"voices": voices, "roll": roll, "bwv": np.asarray([major, minor], np.int32),
          "tonic": np.int32(tonic), "mode": np.int32(mode),
          "time_signature": np.asarray([num, den], np.int32)}


def _try_parse(path):
  try:
    return path, parse_file(path), None
  except Exception as e:   # a bad file is skipped and reported, never a crash
    return path, None, f"{type(e).__name__}: {e}"


def parse_all(paths, processes: int | None = None):
  """(list of (path, parsed) in `paths` order, list of (path, error)).

  Work is spread over `processes` fresh interpreters (`python -m` this module), so it is
  safe from any caller (no fork of a process running JAX, no re-import of `__main__`)."""
  import os
  import pickle
  import subprocess
  import sys
  import tempfile
  paths = list(paths)
  processes = max(1, min(len(paths), processes or os.cpu_count() or 1))
  if processes == 1:
    results = [_try_parse(p) for p in paths]
  else:
    with tempfile.TemporaryDirectory() as tmp:
      jobs = []
      for i in range(processes):
        src, dst = os.path.join(tmp, f"in{i}.pkl"), os.path.join(tmp, f"out{i}.pkl")
        with open(src, "wb") as f:
          pickle.dump(paths[i::processes], f)
        jobs.append((dst, subprocess.Popen([sys.executable, "-m", __name__, src, dst])))
      parts = []
      for dst, proc in jobs:
        if proc.wait() != 0:
          raise RuntimeError(f"chorale parsing worker failed with exit code {proc.returncode}")
        with open(dst, "rb") as f:
          parts.append(pickle.load(f))
      by_path = {r[0]: r for part in parts for r in part}
      results = [by_path[p] for p in paths]
  ok = [(p, r) for p, r, e in results if r is not None]
  bad = [(p, e) for p, r, e in results if r is None]
  return ok, bad


if __name__ == "__main__":   # worker: python -m artjax.music.data.chorales.parse IN.pkl OUT.pkl
  import pickle
  import sys
  with open(sys.argv[1], "rb") as f:
    todo = pickle.load(f)
  with open(sys.argv[2], "wb") as f:
    pickle.dump([_try_parse(p) for p in todo], f)
