"""Song ci (詞) by their tunes (詞牌): the shape of a ci, and each tune's pattern, stanza
break and rhyme positions derived from the corpus itself.

A ci's shape is the sequence of its clause lengths, each with the kind of punctuation that
closes it (`,` for ，、；：, `.` for 。？！), e.g. 浣溪沙 `7.7.7.7,7.7.`. Punctuation in the
sources is an editor's (modern editions differ on commas and stops), so a poem *has its
tune's shape* when its clause lengths are the tune's; the stops of the template come from
the tune's commonest punctuation. A tune's pattern is derived from its poems:

* **lengths**: the most common clause lengths among the tune's poems; the tune is *clear*
  when at least `share` of its (at least `min_poems`) poems have them;
* **stanza break** (上下片): the stop after which the second stanza begins: of the splits
  whose two halves end alike (at least their last two clause lengths equal: a 雙調 tune's
  stanzas close the same way even when the second opens differently, 換頭), the most even
  by characters; a tune with no such split has one stanza. On the 30 most common tunes this
  puts the break where the 詞譜 has it (浣溪沙 after 3 clauses, 菩萨蛮 4, 如梦令 none; the
  list in tests/unit/test_ci.py);
* **rhyme positions**: each poem's rhyme is the unit of 词林正韵 (artjax.poetry.cilin) of its
  last character that most of its clause ends share; a clause end is a rhyme position
  when at least half the tune's poems rhyme there (the last clause always). One unit per
  poem: tunes that change rhyme (菩萨蛮's four 韻段) are held to the units their rhyme
  positions share with the last.

A ci body carries its stanza break as a newline (`BREAK`) when it has its tune's lengths.
"""

from __future__ import annotations

import collections
import dataclasses
import re

from artjax.poetry import cilin

_CLAUSE = re.compile(r"([^，、；：。？！]+)([，、；：。？！])")
_STOPS = "。？！"
BREAK = "\n"
COMMA, PERIOD = "，", "。"


def shape(body: str, lengths_only: bool = False) -> tuple:
  """The clause lengths (and closing kinds) of a ci; a trailing unpunctuated clause ends in
  `x` (a shape no template has). The stanza break is not part of the shape."""
  body = body.replace(BREAK, "")
  clauses = _CLAUSE.findall(body)
  out = tuple(len(c) if lengths_only else (len(c), "." if p in _STOPS else ",") for c, p in clauses)
  return out + (("x",) if _CLAUSE.sub("", body) else ())


def clause_ends(body: str) -> list[str]:
  return [c[-1] for c, _ in _CLAUSE.findall(body.replace(BREAK, ""))]


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


def stanza_break(lengths: tuple, stops: tuple) -> int:
  """Clauses in the first stanza (0: one stanza): among the splits after a stop whose halves
  end in at least two equal clause lengths, the most even by characters (ties: the longer
  common ending)."""
  total, best, best_key = sum(lengths), 0, None
  for k in range(2, len(lengths) - 1):
    if stops[k - 1] != ".":
      continue
    a, b = lengths[:k], lengths[k:]
    run = 0
    while run < min(len(a), len(b)) and a[-1 - run] == b[-1 - run]:
      run += 1
    key = (-abs(2 * sum(a) - total), run)
    if run >= 2 and (best == 0 or key > best_key):
      best, best_key = k, key
  return best


@dataclasses.dataclass(frozen=True)
class Tune:
  """A tune's pattern: clause `lengths` and `stops` ("," or "."), `stanza` clauses in the
  first stanza (0: one), `rhymes` (clause indices), the rhyme's `tone` ('p' | 'z'), and what
  they were derived from: `poems`, `share` (with its lengths), `rhyme_share` (of those,
  whose rhyme positions share one unit)."""
  name: str
  lengths: tuple
  stops: tuple
  stanza: int
  rhymes: tuple
  tone: str
  poems: int
  share: float
  rhyme_share: float

  def template(self) -> str:
    """'c' per character, the punctuation, BREAK at the stanza break: e.g.
    ccccccc。ccccccc。ccccccc。\\nccccccc，ccccccc。ccccccc。"""
    out = ""
    for i, (n, stop) in enumerate(zip(self.lengths, self.stops)):
      out += "c" * n + (PERIOD if stop == "." else COMMA)
      if i + 1 == self.stanza:
        out += BREAK
    return out

  def rhyme_steps(self) -> list[int]:
    """Template positions of the rhyme characters."""
    tpl, ends, k = self.template(), [], -1
    for i, ch in enumerate(tpl):
      if ch in (PERIOD, COMMA):
        k += 1
        if k in self.rhymes:
          ends.append(i - 1)
    return ends

  def check(self, body: str) -> dict:
    """{"shape": its clause lengths are the tune's, "stanza": the break where the tune has
    it, "rhyme": its rhyme positions share one unit, "unit"}."""
    ok = shape(body, True) == self.lengths
    unit = rhyme_unit(clause_ends(body), self.rhymes) if ok else None
    where = [i for i, (c, _) in enumerate(_CLAUSE.findall(body.split(BREAK)[0]))]
    stanza = ok and (self.stanza == 0 and BREAK not in body or
                     BREAK in body and len(where) == self.stanza)
    return {"shape": ok, "stanza": bool(stanza), "rhyme": unit is not None, "unit": unit}


def rhyme_unit(ends: list[str], positions) -> tuple | None:
  """The unit all the rhyme `positions`' characters share (the first if several), or None.
  A character the dictionary does not know fits any unit (as pingshui.tone_of fits either
  tone); a poem with no known rhyme character has none."""
  common = None
  for i in positions:
    if i >= len(ends):
      return None
    u = cilin.units(ends[i])
    if u:
      common = u if common is None else common & u
  return min(common) if common else None


def _poem_unit(ends: list[str]) -> tuple | None:
  """The unit of the last character that most clause ends share."""
  counts = collections.Counter(u for e in ends for u in cilin.units(e))
  last = cilin.units(ends[-1])
  return max(sorted(last), key=lambda u: counts[u]) if last else None


def derive(name: str, bodies: list[str], min_share: float = 0.5) -> Tune | None:
  """The Tune of `name` from its poems, or None when no clause lengths are clear."""
  lengths, n = collections.Counter(shape(b, True) for b in bodies).most_common(1)[0]
  if "x" in lengths or n / len(bodies) < min_share or len(lengths) < 2:
    return None
  mine = [b for b in bodies if shape(b, True) == lengths]
  stops = collections.Counter(tuple(s for _, s in shape(b)) for b in mine).most_common(1)[0][0]
  hits, units = [0] * len(lengths), []
  for b in mine:
    ends = clause_ends(b)
    u = _poem_unit(ends)
    units.append(u)
    if u is not None:
      for i, e in enumerate(ends):
        hits[i] += u in cilin.units(e)
  known = [u for u in units if u is not None] or [(0, "p")]
  rhymes = tuple(i for i in range(len(lengths))
                 if hits[i] >= len(known) / 2 or i == len(lengths) - 1)
  tone = collections.Counter(u[1] for u in known).most_common(1)[0][0]
  agree = sum(rhyme_unit(clause_ends(b), rhymes) is not None for b in mine) / len(mine)
  return Tune(name, lengths, stops, stanza_break(lengths, stops), rhymes, tone, len(bodies),
              n / len(bodies), agree)


def derive_all(tunes, bodies, min_poems: int = 10, min_share: float = 0.5) -> dict:
  """{tune name: Tune} for the tunes with >= `min_poems` poems and clear clause lengths."""
  by = collections.defaultdict(list)
  for t, b in zip(tunes, bodies):
    if t:
      by[t].append(b)
  out = {}
  for t, bs in sorted(by.items()):
    tune = derive(t, bs, min_share) if len(bs) >= min_poems else None
    if tune is not None:
      out[t] = tune
  return out
