"""The Tang poems of the MIT-licensed chinese-poetry collection as a TFDS builder.

Source: a checkout of github.com/chinese-poetry/chinese-poetry (`全唐诗/poet.tang.*.json`)
or the unpacked npm package `chinese-poetry` (`package/dist/quantangshi/poet.tang.*.json`):
about 57k poems, characters as in the source (traditional). Nothing is fetched here: the
caller finds or fetches the files (`artjax.tasks.datasets.load_poetry`).

Features per poem (fixed shapes: TFDS without TensorFlow), text as Unicode code points,
0-padded, with lengths:
  body   int32 [MAX_BODY]   the verses with their punctuation, e.g. 春眠不覺曉，處處聞啼鳥。...
  title  int32 [MAX_TITLE], author int32 [MAX_AUTHOR] (truncated)
  length int32              characters in body
  form   int32              0 wujue, 1 qijue, 2 wulu, 3 qilu (five-/seven-character quatrain,
                            regulated verse: 4 or 8 verses of 5 or 7 characters), 4 other

Split (fixed, poem level): crc32(author + "\\x00" + title) % 20: 0 -> test, 1 ->
validation, else train (about 90/5/5). Poems whose body is empty or longer than MAX_BODY
are skipped (counted in the metadata).
"""

from __future__ import annotations

import glob
import json
import os
import re
import zlib

import numpy as np
import tensorflow_datasets as tfds

from artjax.engine.data import text_codes

SPLITS = ("train", "validation", "test")
FORMS = ("wujue", "qijue", "wulu", "qilu", "other")
MAX_BODY, MAX_TITLE, MAX_AUTHOR = 128, 32, 16
PATTERNS = ("**/quantangshi/poet.tang.*.json", "**/全唐诗/poet.tang.*.json")
VERSE_END = "，。？！；"


def find_sources(root: str) -> list[str]:
  """The Tang-poem JSON files under `root` (a checkout or an unpacked npm package)."""
  files = set()
  for pat in PATTERNS:
    files.update(glob.glob(os.path.join(root, pat), recursive=True))
  return sorted(files, key=lambda p: (len(p), p))


def split_of(author: str, title: str) -> str:
  r = zlib.crc32(f"{author}\x00{title}".encode()) % 20
  return "test" if r == 0 else ("validation" if r == 1 else "train")


def verses(body: str) -> list[str]:
  """The verses of a body, each without its closing punctuation."""
  return [v for v in re.split(f"[{VERSE_END}]", body) if v]


def detect_form(body: str) -> int:
  vs = verses(body)
  lengths = {len(v) for v in vs}
  if len(lengths) == 1 and len(vs) in (4, 8) and lengths <= {5, 7}:
    n = lengths.pop()
    ends_ok = all(body[i] in VERSE_END for i in range(n, len(body), n + 1))
    if ends_ok and len(body) == len(vs) * (n + 1):
      return {(4, 5): 0, (4, 7): 1, (8, 5): 2, (8, 7): 3}[(len(vs), n)]
  return 4


class Builder(tfds.core.GeneratorBasedBuilder):
  """Tang poems: body, title, author, form."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: crc32(author, title) % 20 split."}

  def __init__(self, *, source_files=(), **kwargs):
    self.source_files = list(source_files)
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "body": tfds.features.Tensor(shape=(MAX_BODY,), dtype=np.int32),
            "title": tfds.features.Tensor(shape=(MAX_TITLE,), dtype=np.int32),
            "author": tfds.features.Tensor(shape=(MAX_AUTHOR,), dtype=np.int32),
            "length": tfds.features.Tensor(shape=(), dtype=np.int32),
            "form": tfds.features.Tensor(shape=(), dtype=np.int32),
        }),
        homepage="https://github.com/chinese-poetry/chinese-poetry",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    by_split = {s: [] for s in SPLITS}
    skipped, seen = 0, set()
    for path in self.source_files:
      with open(path, encoding="utf-8") as f:
        poems = json.load(f)
      for i, p in enumerate(poems):
        body = "".join(p.get("paragraphs") or []).strip()
        author, title = str(p.get("author") or ""), str(p.get("title") or "")
        if not body or len(body) > MAX_BODY or (author, title, body) in seen:
          skipped += 1
          continue
        seen.add((author, title, body))
        by_split[split_of(author, title)].append((f"{os.path.basename(path)}:{i}", author, title, body))
    self.info.metadata["skipped"] = skipped
    self.info.metadata["files"] = len(self.source_files)
    return {s: self._generate_examples(items) for s, items in by_split.items()}

  def _generate_examples(self, items):
    for key, author, title, body in items:
      yield key, {"body": text_codes(body, MAX_BODY), "title": text_codes(title, MAX_TITLE),
                  "author": text_codes(author, MAX_AUTHOR), "length": np.int32(len(body)),
                  "form": np.int32(detect_form(body))}
