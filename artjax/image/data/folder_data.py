"""`folder:PATH`: a user's folder (or .zip) of pictures as an image dataset, prepared once
per content and settings by the builder in image/data/folder/ (see there for the rules).

Data config fields: `resolution` (a power of two, 8-1024), `fit` (crop | pad), `labels`
(first-level subfolders are the classes), `mirror` (the train split doubled with
left-right flips), `strict` (an unreadable file is an error, not a warning),
`max_pixels` (larger pictures are refused: decompression bombs), `split_by` (path | name:
name keeps `A/cat.png` and `B/cat.png` in one split, for paired folders; `pairs`).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from artjax import ConfigError
from artjax.engine import data as data_lib
from artjax.image.data import folder as builder_lib
from artjax.image.data.dataset import ImageDataset
from artjax.engine import progress

PREFIX = "folder:"


def path_of(name: str) -> str:
  return name[len(PREFIX):]


def check(d) -> None:
  """The config's checks, before any file is read."""
  r = int(d.resolution)
  if r < 8 or r > 1024 or r & (r - 1):
    raise ConfigError(f"data.resolution={r}: a power of two in 8..1024")
  if d.fit not in builder_lib.folder_builder.FITS:
    raise ConfigError(f"data.fit={d.fit!r}: choose one of {builder_lib.folder_builder.FITS}")
  if d.get("split_by", "path") not in builder_lib.folder_builder.SPLIT_BY:
    raise ConfigError(f"data.split_by={d.split_by!r}: choose one of "
                      f"{builder_lib.folder_builder.SPLIT_BY}")
  path = path_of(d.name)
  if not os.path.exists(path):
    raise ConfigError(f"data.name={d.name!r}: no such folder or .zip file")


def class_names(d) -> tuple:
  """The first-level subfolders holding pictures, sorted (lists names only)."""
  check(d)
  listing = builder_lib.folder_builder.listing(path_of(d.name))
  return tuple(sorted({rel.split("/", 1)[0] for rel, _, _ in listing if "/" in rel}))


def num_classes(d) -> int:
  """The first-level subfolders holding pictures (1 without data.labels); lists names only."""
  check(d)
  return max(len(class_names(d)), 1) if d.labels else 1


def shape(d) -> tuple:
  check(d)
  return (int(d.resolution), int(d.resolution), 3)


def _scan(d):
  """The checked folder (builder_lib.scan), once per process while its listing (names,
  sizes, modification times) and the settings stay the same."""
  path = path_of(d.name)
  settings = repr((int(d.resolution), d.fit, bool(d.labels), d.get("split_by", "path")))
  key = ("folder-scan", os.path.abspath(path), settings, int(d.max_pixels), bool(d.strict),
         hash(tuple(builder_lib.folder_builder.listing(path))))
  if key not in data_lib.CACHE:
    data_lib.CACHE[key] = _checked_scan(d, path, settings)
  return data_lib.CACHE[key]


def _checked_scan(d, path, settings):
  from tqdm.auto import tqdm
  try:
    found = builder_lib.scan(path, settings, int(d.max_pixels), bool(d.labels),
                             progress=lambda xs: tqdm(xs, desc=f"checking {path}", unit="file",
                                                      leave=progress.leave(), mininterval=1.0))
  except builder_lib.folder_builder.TooLarge as e:
    raise ConfigError(f"{path}: {e}, above data.max_pixels={d.max_pixels} "
                      "(a decompression bomb?)") from e
  if found.bad:
    names = (", ".join(builder_lib.folder_builder.printable(b) for b in found.bad[:3])
             + (" ..." if len(found.bad) > 3 else ""))
    if d.strict:
      raise ConfigError(f"{path}: {len(found.bad)} unreadable picture(s) ({names}); remove them "
                        "or set data.strict=False to skip them")
    print(f"warning: {path}: skipping {len(found.bad)} unreadable picture(s): {names}",
          file=sys.stderr, flush=True)
  if not found.files:
    raise ConfigError(f"{path}: no readable pictures ({', '.join(builder_lib.folder_builder.EXTENSIONS)})")
  if d.labels and (len(found.classes) < 2 or any("/" not in f for f in found.files)):
    raise ConfigError(f"{path}: data.labels needs every picture in a first-level subfolder "
                      f"(one per class, at least 2); found classes {list(found.classes)}")
  return found


def load(d) -> ImageDataset:
  """The folder's splits in memory (prepared once per fingerprint; cached per process)."""
  check(d)
  data_dir = d.data_dir or data_lib.default_data_dir()
  found = _scan(d)
  split_by = d.get("split_by", "path")
  key = ("folder", found.fingerprint, data_dir, bool(d.mirror))
  if key in data_lib.CACHE:
    return data_lib.CACHE[key]
  b = builder_lib.Builder(folder=found, resolution=int(d.resolution), fit=d.fit,
                          split_by=split_by, data_dir=data_dir, file_format="array_record")
  data_lib.prepare_once(b, progress=True)
  src = b.as_data_source()
  splits, meta = {}, {}
  for k in ("train", "validation", "test"):
    recs = src[k].__getitems__(list(range(len(src[k])))) if k in src else []
    r = int(d.resolution)
    ims = (np.stack([np.asarray(x["image"], np.uint8) for x in recs]) if recs
           else np.zeros((0, r, r, 3), np.uint8))
    lbs = np.asarray([int(x["label"]) for x in recs], np.int32)
    keys = [data_lib.codes_text(np.asarray(x["key"])) for x in recs]
    if k == "train" and d.mirror:
      ims, lbs = np.concatenate([ims, ims[:, :, ::-1]]), np.concatenate([lbs, lbs])
      keys = keys + [f"{rel}#mirrored" for rel in keys]
    splits[k], meta[k] = (ims, lbs), {"key": keys}
  ds = ImageDataset(d.name, splits, max(len(found.classes), 1), meta,
                    class_names=found.classes)
  data_lib.CACHE[key] = ds
  return ds


def pairs(ds: ImageDataset, split: str, source: str, target: str):
  """(source pictures, target pictures, names, zeros): the pictures of `split` found under
  both `source/NAME` and `target/NAME` (first-level subfolders; a paired folder prepared
  with data.labels=True and data.split_by=name), sorted by NAME, row for row."""
  classes = tuple(ds.class_names)
  rows = {}
  for side in (source, target):
    c = classes.index(side)
    rows[side] = {builder_lib.folder_builder.name_of(k): i
                  for i, (k, y) in enumerate(zip(ds.meta[split]["key"], ds.labels(split)))
                  if y == c and not k.endswith("#mirrored")}
  names = sorted(set(rows[source]) & set(rows[target]))
  a, b = [rows[source][n] for n in names], [rows[target][n] for n in names]
  ims = ds.images(split)
  return ims[a], ims[b], np.asarray(names), np.zeros(len(names), np.int32)
