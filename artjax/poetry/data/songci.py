"""The Song ci of `chinese-poetry` (MIT; npm, about 21,000 poems, each with its tune name):
data name `ci`. Split by a hash of tune and body (5 % test, 5 % validation), the same body
twice kept once; the tunes' patterns (artjax.poetry.ci) are derived from the training split
alone, and each body whose clause lengths are its tune's carries the stanza break.

In a split the poems' control name (`author`, the token a poem is conditioned on) is the
*tune*; the poet is kept as `poet`. "失调名" (tune lost) is no tune.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re

from artjax import ConfigError
from artjax.engine import data as data_lib
from artjax.poetry import ci
from artjax.poetry.data import user_text
from artjax.sources import npm

NAME = "ci"
NO_TUNE = ("失调名", "失調名")
_CACHE: dict = {}


def is_ci(name: str) -> bool:
  return name == NAME


def read_song_ci(source_dir: str = "", data_dir: str | None = None) -> list[tuple]:
  """[(tune, poet, body with a newline between paragraphs)] of every Song ci (fetched with
  npm into the data dir once, or read from a chinese-poetry checkout)."""
  root = source_dir or os.path.join(data_dir or data_lib.default_data_dir(), "downloads",
                                    "chinese-poetry-songci")
  files = sorted(glob.glob(os.path.join(root, "**", "ci.song.*.json"), recursive=True))
  if not files and source_dir:
    raise ConfigError(f"no ci.song.*.json under data.source_dir {source_dir!r} (a chinese-poetry "
                      "checkout or an unpacked npm package)")
  if not files:
    npm.npm_pack("chinese-poetry", root, lambda n: re.search(r"songci/ci\.song\.\d+\.json$", n),
                 "no ci to read: pass --config.data.source_dir=DIR (a chinese-poetry checkout) "
                 "or install npm so artjax can fetch the package", size="85 MB")
    files = sorted(glob.glob(os.path.join(root, "**", "ci.song.*.json"), recursive=True))
  out = []
  for p in files:
    with open(p, encoding="utf-8") as f:
      for x in json.load(f):
        body = "\n".join(x.get("paragraphs") or [])
        if body:
          tune = str(x.get("rhythmic") or "")
          out.append(("" if tune in NO_TUNE else tune, str(x.get("author") or ""), body))
  return out


def load(source_dir: str = "", data_dir: str | None = None, min_poems: int = 10) -> tuple:
  """(splits, tunes): split -> dict(body, title (the tune), author (the tune: the control
  name), poet, form); tunes: {name: ci.Tune} from the training split."""
  key = (source_dir, data_dir, min_poems)
  if key in _CACHE:
    return _CACHE[key]
  from artjax.poetry import text
  seen, poems = set(), []
  for tune, poet, body in read_song_ci(source_dir, data_dir):
    flat = body.replace("\n", "")
    if flat not in seen:
      seen.add(flat)
      poems.append((tune, poet, flat))
  poems.sort(key=lambda p: hashlib.sha256(f"{p[0]}\x00{p[2]}".encode()).hexdigest())
  splits = {s: {"body": [], "title": [], "author": [], "poet": [], "form": []}
            for s in ("train", "validation", "test")}
  for i, (tune, poet, body) in enumerate(poems):
    sp = splits[user_text.split_of(i, len(poems))]
    for k, v in (("body", body), ("title", tune), ("author", tune), ("poet", poet),
                 ("form", text.FORMS.index("other"))):
      sp[k].append(v)
  tunes = ci.derive_all(splits["train"]["author"], splits["train"]["body"], min_poems)
  for sp in splits.values():
    sp["body"] = [with_break(b, tunes.get(t)) for b, t in zip(sp["body"], sp["author"])]
  _CACHE[key] = (splits, tunes)
  return splits, tunes


def with_break(body: str, tune: ci.Tune | None) -> str:
  """`body` with the stanza break after its tune's first stanza (when it has the tune's
  clause lengths and the tune two stanzas)."""
  if tune is None or not tune.stanza or ci.shape(body, True) != tune.lengths:
    return body
  clauses = re.findall(r"[^，、；：。？！]+[，、；：。？！]", body)
  head = "".join(clauses[:tune.stanza])
  return head + ci.BREAK + body[len(head):]
