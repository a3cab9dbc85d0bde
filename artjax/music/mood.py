"""Mood as musical controls: a (valence, arousal) pair, each in [-1, 1], mapped to the mode
the model is asked for, the tempo of the rendering and the register of the whole piece.

The mapping follows the cues music-emotion studies agree on (Gabrielsson & Lindstrom 2010,
"The role of structure in the musical expression of emotions"): mode carries valence (major
happy or serene, minor sad or tense), tempo carries arousal (fast excited, slow calm), and
pitch height rises with both. So:

* mode: major when valence >= 0, else minor (the model's own control: configs/music.py
  keynorm_every obeys it);
* tempo: 80 x 1.5^arousal beats per minute (53 at -1, 80 at 0, 120 at +1);
* register: the piece moved by round(3 x (valence + arousal)) semitones (-6..+6), keys
  pushed off the piano dropped (encoding.transpose_clipped).

The chorales carry neither tempo nor register as a learnable choice (hymn tempo, four
voices in their ranges), so those two are rendering controls; the mode is the model's.
"""

from __future__ import annotations

import dataclasses

BASE_BPM = 80.0


@dataclasses.dataclass(frozen=True)
class Controls:
  mode: int        # 0 major, 1 minor
  bpm: float
  register: int    # semitones the whole piece moves


def parse(text: str) -> tuple[float, float]:
  """"VALENCE,AROUSAL" (each in [-1, 1]) -> the pair; a ValueError saying what is wrong."""
  parts = [p.strip() for p in str(text).split(",")]
  try:
    v, a = (float(p) for p in parts)
  except ValueError:
    raise ValueError(f"mood {text!r}: give VALENCE,AROUSAL, two numbers in [-1, 1] "
                     "(e.g. 0.8,0.6 happy, -0.7,-0.5 sad)") from None
  if not (-1.0 <= v <= 1.0 and -1.0 <= a <= 1.0):
    raise ValueError(f"mood {text!r}: valence and arousal must each be in [-1, 1]")
  return v, a


def controls(valence: float, arousal: float) -> Controls:
  return Controls(mode=0 if valence >= 0 else 1, bpm=BASE_BPM * 1.5 ** arousal,
                  register=int(round(3.0 * (valence + arousal))))
