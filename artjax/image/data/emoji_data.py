"""`emoji`, `emoji:google`, `emoji:twitter`: the emoji builder's images (image/data/emoji/)
at `data.resolution` 16, 32 or 64, composited on white (or RGBA with `data.alpha`).
`emoji:style`: both styles labelled by style (0 google, 1 twitter): the style evaluator's
data ("is it Twitter?").

Splits: the builder's `test` (sha256(key) % 10 == 0) is the test split; of its `train`, the
keys with sha256(key) % 10 == 1 are held out as `validation` (model selection, the
evaluator's floor), the rest is `train`. Pairs (the same key in both styles) never straddle
splits. Labels: the category (9); `meta[split]["style"]` (0 google, 1 twitter) and
`meta[split]["key"]` (the file name) ride along.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from artjax import ConfigError
from artjax.sources import npm
from artjax.engine import data as data_lib
from artjax.image.data import emoji as builder_lib
from artjax.image.data.dataset import ImageDataset

NAMES = ("emoji", "emoji:google", "emoji:twitter", "emoji:style")
RESOLUTIONS = (16, 32, 64)
NUM_CLASSES = len(builder_lib.CATEGORIES)


def num_classes(name: str) -> int:
  return len(builder_lib.STYLES) if name == "emoji:style" else NUM_CLASSES


def shape(d) -> tuple:
  if int(d.resolution) not in RESOLUTIONS:
    raise ConfigError(f"data.resolution={d.resolution}: {d.name} comes at {RESOLUTIONS}")
  return (int(d.resolution), int(d.resolution), 4 if d.alpha else 3)


def _package_dir(style: str, data_dir: str) -> str:
  """The unpacked npm package of `style` (fetched with `npm pack` once, then cached)."""
  pkg = f"emoji-datasource-{style}"
  cache = os.path.join(data_dir, "downloads", f"{pkg}-{builder_lib.VERSION}")
  root = os.path.join(cache, "package")
  if not os.path.isdir(os.path.join(root, "img", style, "64")):
    keep = lambda n: (n in ("package/emoji.json", "package/LICENSE", "package/README.md")
                      or n.startswith(f"package/img/{style}/64/"))
    npm.npm_pack(f"{pkg}@{builder_lib.VERSION}", cache, keep,
                      f"the emoji dataset needs the npm package {pkg}@{builder_lib.VERSION}: "
                      "install npm (artjax fetches it once into the data dir)", size="~70 MB")
  return root


def _raw(data_dir: str) -> dict:
  """{split: (rgba [N,64,64,4], category [N], style [N], keys [N])}, prepared once."""
  def load():
    b = builder_lib.Builder(data_dir=data_dir, file_format="array_record")
    if not data_lib.is_prepared(b):
      dirs = {s: _package_dir(s, data_dir) for s in builder_lib.STYLES}
      b = builder_lib.Builder(data_dir=data_dir, file_format="array_record", source_dirs=dirs)
      data_lib.prepare_once(b, progress=True)
    src = b.as_data_source()
    out = {}
    for k in ("train", "test"):
      recs = src[k].__getitems__(list(range(len(src[k]))))
      out[k] = (np.stack([np.asarray(r["image"], np.uint8) for r in recs]),
                np.asarray([int(r["category"]) for r in recs], np.int32),
                np.asarray([int(r["style"]) for r in recs], np.int32),
                np.asarray([data_lib.codes_text(r["key"]) for r in recs]))
    return out
  key = ("emoji_raw", data_dir)
  if key not in data_lib.CACHE:
    data_lib.CACHE[key] = load()
  return data_lib.CACHE[key]


def on_white(rgba) -> np.ndarray:
  """RGBA uint8 [..., 4] composited on a white background -> RGB uint8 [..., 3]."""
  x = rgba.astype(np.float32)
  a = x[..., 3:] / 255.0
  return np.round(x[..., :3] * a + 255.0 * (1.0 - a)).astype(np.uint8)


def resize(rgba, size: int) -> np.ndarray:
  """Antialiased (box-filtered, alpha-aware) resize of RGBA images to size x size."""
  if rgba.shape[1] == size:
    return rgba
  from PIL import Image
  return np.stack([np.asarray(Image.fromarray(im, "RGBA").resize((size, size), Image.BOX))
                   for im in rgba])


def _held_out(keys) -> np.ndarray:
  return np.asarray([int(hashlib.sha256(k.encode()).hexdigest(), 16) % 10 == 1 for k in keys])


def load(name: str, data_dir: str | None, resolution: int, alpha: bool) -> ImageDataset:
  """The named emoji dataset (cached per process)."""
  data_dir = data_dir or data_lib.default_data_dir()
  if resolution not in RESOLUTIONS:
    raise ConfigError(f"data.resolution={resolution}: {name} comes at {RESOLUTIONS}")
  cache_key = (name, data_dir, resolution, alpha)
  if cache_key in data_lib.CACHE:
    return data_lib.CACHE[cache_key]
  raw = _raw(data_dir)
  both = name in ("emoji", "emoji:style")
  styles = range(len(builder_lib.STYLES)) if both else [
      builder_lib.STYLES.index(name.split(":", 1)[1])]
  parts = {}
  for k, (ims, cats, sty, keys) in raw.items():
    sel = np.isin(sty, list(styles))
    if k == "train":
      val = sel & _held_out(keys)
      parts["validation"], parts["train"] = val, sel & ~val
    else:
      parts["test"] = sel
  splits, meta = {}, {}
  for split, sel in parts.items():
    ims, cats, sty, keys = (a[sel] for a in raw["test" if split == "test" else "train"])
    ims = resize(ims, resolution)
    by_style = name == "emoji:style"
    splits[split] = (ims if alpha else on_white(ims), sty if by_style else cats)
    meta[split] = {"style": sty, "key": keys, "category": cats}
  names = tuple(builder_lib.STYLES) if name == "emoji:style" else builder_lib.CATEGORIES
  ds = ImageDataset(name, splits, num_classes(name), meta, class_names=names)
  data_lib.CACHE[cache_key] = ds
  return ds


def pairs(ds: ImageDataset, split: str, source: str, target: str):
  """(source images, target images, keys, categories): the subjects of `split` drawn in both
  styles, the same subject in the same row, sorted by key (the file name)."""
  meta, ims = ds.meta[split], ds.images(split)
  s, t = builder_lib.STYLES.index(source), builder_lib.STYLES.index(target)
  rows = {style: {k: i for i, (k, st) in enumerate(zip(meta["key"], meta["style"])) if st == style}
          for style in (s, t)}
  keys = sorted(set(rows[s]) & set(rows[t]))
  a, b = [rows[s][k] for k in keys], [rows[t][k] for k in keys]
  return ims[a], ims[b], np.asarray(keys), np.asarray(meta["category"])[a]
