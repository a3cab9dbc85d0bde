"""Tang poems from the `chinese-poetry` npm package (MIT), prepared once by the TFDS builder
in `poetry/`: bodies, titles, authors and forms per split."""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from artjax import ConfigError
from artjax.sources import npm

from artjax.engine import data as data_lib


@dataclasses.dataclass(frozen=True)
class Poems:
  """Tang poems per split: split -> dict(body=[str], title=[str], author=[str], form=[N])
  (form: index into artjax.poetry.data.poetry.FORMS)."""
  splits: dict

  def bodies(self, split: str) -> list:
    return self.splits[split]["body"]


NPM_PACKAGE = "chinese-poetry"


def poetry_sources(source_dir: str, data_dir: str) -> list[str]:
  """The Tang-poem JSON files: under `source_dir`, else a fetched npm package (cached)."""
  from artjax.poetry.data.poetry import find_sources
  if source_dir:
    if not os.path.isdir(source_dir):
      raise ConfigError(f"data.source_dir {source_dir!r} does not exist")
    files = find_sources(source_dir)
    if not files:
      raise ConfigError(f"no poet.tang.*.json under data.source_dir {source_dir!r} (expected "
                        "a chinese-poetry checkout or an unpacked npm package)")
    return files
  cache = os.path.join(data_dir, "downloads", NPM_PACKAGE)
  if not find_sources(cache):
    npm.npm_pack(
        NPM_PACKAGE, cache, lambda name: re.search(r"quantangshi/poet\.tang\.\d+\.json$", name),
        "no poems to read: pass --config.data.source_dir=DIR (a checkout of "
        "github.com/chinese-poetry/chinese-poetry or an unpacked `npm pack chinese-poetry`), "
        "or install npm so artjax can fetch the package", size="85 MB")
  return find_sources(cache)


def load_poetry(source_dir: str = "", data_dir: str | None = None) -> Poems:
  """The poetry builder's splits, prepared on first use, cached per process."""
  data_dir = data_dir or data_lib.default_data_dir()
  key = ("poetry", data_dir)
  if key in data_lib.CACHE:
    return data_lib.CACHE[key]
  from artjax.poetry.data.poetry import Builder
  builder = Builder(data_dir=data_dir, file_format="array_record")
  if not data_lib.is_prepared(builder):
    builder = Builder(data_dir=data_dir, file_format="array_record",
                      source_files=poetry_sources(source_dir, data_dir))
    data_lib.prepare_once(builder)
  src = builder.as_data_source()
  splits = {}
  for k in ("train", "validation", "test"):
    recs = src[k].__getitems__(list(range(len(src[k]))))
    splits[k] = {"body": [data_lib.codes_text(r["body"], int(r["length"])) for r in recs],
                 "title": [data_lib.codes_text(r["title"]) for r in recs],
                 "author": [data_lib.codes_text(r["author"]) for r in recs],
                 "form": np.asarray([int(r["form"]) for r in recs], np.int32)}
  ds = Poems(splits)
  data_lib.CACHE[key] = ds
  return ds


def load(name: str, source_dir: str = "", data_dir: str | None = None) -> Poems:
  """The poems of data name `name`: "poetry" (the Tang poems), "ci" (the Song ci by their
  tunes, artjax.poetry.data.songci) or "text:PATH" (a user's own poems,
  artjax.poetry.data.user_text)."""
  from artjax.poetry.data import songci, user_text
  if songci.is_ci(name):
    splits, _ = songci.load(source_dir, data_dir)
    return Poems({k: dict(v, form=np.asarray(v["form"], np.int32)) for k, v in splits.items()})
  if user_text.is_text(name):
    splits = user_text.read_corpus(name)
    return Poems({k: dict(v, form=np.asarray(v["form"], np.int32)) for k, v in splits.items()})
  return load_poetry(source_dir, data_dir)
