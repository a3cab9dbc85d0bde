"""Song ci (詞) by their tunes (詞牌): the shape of a ci, and each tune's dominant shape derived
from the corpus itself.

A ci's shape is the sequence of its clause lengths, each with the kind of punctuation that
closes it (`,` for ，、；：, `.` for 。？！), e.g. 浣溪沙 `7.7.7.7,7.7.`. Punctuation in the
sources is an editor's (modern editions differ on commas and stops), so `lengths_only` drops
the kinds. A tune's pattern is its most common shape; it is *clear* when at least `share` of
the tune's (at least `min_poems`) poems have it.
"""

from __future__ import annotations

import collections
import re

_CLAUSE = re.compile(r"([^，、；：。？！]+)([，、；：。？！])")
_STOPS = "。？！"


def shape(body: str, lengths_only: bool = False) -> tuple:
  """The clause lengths (and closing kinds) of a ci; a trailing unpunctuated clause ends in
  `x` (a shape no template has)."""
  clauses = _CLAUSE.findall(body)
  out = tuple(len(c) if lengths_only else (len(c), "." if p in _STOPS else ",") for c, p in clauses)
  return out + (("x",) if _CLAUSE.sub("", body) else ())


def text_of(s: tuple) -> str:
  return "".join(str(x) if not isinstance(x, tuple) else f"{x[0]}{x[1]}" for x in s)


def tune_patterns(tunes, bodies, min_poems: int = 10, share: float = 0.5,
                  lengths_only: bool = False) -> dict:
  """tune -> {"poems", "pattern" (its most common shape), "share" (of its poems that have
  it), "clear"} for the tunes with at least `min_poems` poems."""
  by = collections.defaultdict(list)
  for t, b in zip(tunes, bodies):
    by[t].append(shape(b, lengths_only))
  out = {}
  for t, shapes in by.items():
    if len(shapes) < min_poems or not t:
      continue
    top, n = collections.Counter(shapes).most_common(1)[0]
    out[t] = {"poems": len(shapes), "pattern": top, "share": n / len(shapes),
              "clear": n / len(shapes) >= share}
  return out


def follows(body: str, pattern: tuple, lengths_only: bool = False) -> bool:
  return shape(body, lengths_only) == pattern
