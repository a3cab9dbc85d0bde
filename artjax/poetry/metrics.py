"""Measures of poems: character n-gram baselines, form, rhyme, tonal pattern, copying.

Rhyme and tones use pypinyin's modern Mandarin readings, an approximation of Tang-era
phonology (the entering tone is gone, rhyme groups have merged and split): the same code
scores real held-out poems, which gives the floor to read a sample's figure against.
  rhyme key    the final without its medial (i/u/v): 光 guang -> ang, 霜 shuang -> ang
  level tone   ping = Mandarin tones 1 and 2, ze = 3 and 4 (neutral/unknown: not scored)
"""

from __future__ import annotations

import collections

import numpy as np

from pypinyin import Style, lazy_pinyin

from artjax.poetry.data.poetry import detect_form, verses
from artjax.poetry import text

_BOUNDARY = "\x02"


from artjax.evaluation.ngram import KneserNey, unigram_bits  # noqa: F401,E402


def _pinyin(chars: str, style):
  return lazy_pinyin(chars, style=style, errors=lambda x: ["?"] * len(x))


def rhyme_key(final: str) -> str:
  return final[1:] if len(final) > 1 and final[0] in "iuv" else final


def rhymes(body: str) -> bool | None:
  """Do the even verses end in one rhyme group? None when there are fewer than 2."""
  vs = verses(body)
  ends = "".join(v[-1] for i, v in enumerate(vs) if i % 2 == 1 and v)
  if len(ends) < 2:
    return None
  keys = {rhyme_key(f) for f in _pinyin(ends, Style.FINALS)}
  return len(keys) == 1


def rhyme_groups(chars, min_size: int = 20) -> dict:
  """{rhyme key: [indices into chars]} of the level-tone (ping) characters, groups of at
  least `min_size` (what rhyme-constrained decoding draws a poem's rhyme from)."""
  groups = collections.defaultdict(list)
  finals = _pinyin("".join(chars), Style.FINALS)
  tones = tone_classes("".join(chars))
  for i, (c, f, t) in enumerate(zip(chars, finals, tones)):
    if t == "p" and text.is_han(c) and f not in ("?", ""):
      groups[rhyme_key(f)].append(i)
  return {k: v for k, v in sorted(groups.items()) if len(v) >= min_size}


def tone_classes(verse: str) -> list:
  """'p' (level), 'z' (oblique) or None per character."""
  out = []
  for s in _pinyin(verse, Style.TONE3):
    t = s[-1] if s and s[-1].isdigit() else ""
    out.append("p" if t in ("1", "2") else ("z" if t in ("3", "4") else None))
  return out


def tonal_compliance(body: str) -> float | None:
  """Share of the regulated-verse tone rules a poem keeps: within each verse the 2nd and
  4th characters differ (and the 4th and 6th, in 7-character verses); the two verses of a
  couplet are opposed at the 2nd character, and each couplet's first verse sticks to the
  previous verse there. None when the poem is not of a regulated shape."""
  vs = verses(body)
  if len(vs) not in (4, 8) or len({len(v) for v in vs}) != 1 or len(vs[0]) not in (5, 7):
    return None
  tones = [tone_classes(v) for v in vs]
  checks = []
  pairs = [(1, 3)] + ([(3, 5)] if len(vs[0]) == 7 else [])
  for t in tones:
    checks += [(t[a], t[b], False) for a, b in pairs]
  for i in range(1, len(vs)):
    checks.append((tones[i][1], tones[i - 1][1], i % 2 == 0))   # odd i: opposed; even: same
  scored = [(a == b) == same for a, b, same in checks if a and b]
  return float(np.mean(scored)) if scored else None


class Corpus:
  """Training text for copying checks: longest common substring, whole-verse quotes."""

  def __init__(self, bodies):
    self.text = _BOUNDARY.join(bodies)
    self.verses = {v for b in bodies for v in verses(b) if len(v) >= 5}

  def longest_common(self, s: str) -> int:
    lo, hi = 0, len(s)
    while lo < hi:
      mid = (lo + hi + 1) // 2
      if any(s[i:i + mid] in self.text for i in range(len(s) - mid + 1)):
        lo = mid
      else:
        hi = mid - 1
    return lo

  def quotes_a_verse(self, body: str) -> bool:
      return any(v in self.verses for v in verses(body))


def form_of(body: str) -> str:
  return text.FORMS[detect_form(body)]
