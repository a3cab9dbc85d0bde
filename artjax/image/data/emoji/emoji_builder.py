"""The same ~1,900 emoji subjects drawn by two teams of artists, as a TFDS builder.

Source: the npm packages `emoji-datasource-google` and `emoji-datasource-twitter`, version
16.0.0 (MIT, (c) Cal Henderson; Google's Noto Emoji images Apache-2.0; Twitter's Twemoji
images CC-BY-4.0), fetched with `npm pack` into the data dir's cache on first use. Every
64x64 RGBA PNG of `img/<style>/64/` becomes one example:

  image     uint8 [64, 64, 4] (RGBA as drawn; the loader composites on white or keeps alpha)
  category  int32, index into CATEGORIES (emoji.json's category; skin-tone variants under
            their base's category; the 5 "Component" swatches are dropped)
  style     int32, index into STYLES (0 google, 1 twitter)
  key       int32 [64], the file name's code points (zero-padded): the same emoji has the same
            key in both styles, so pairs are found by key

Split by key, so a pair never straddles splits: `test` when
int(sha256(key).hexdigest(), 16) % 10 == 0, else `train`.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import tensorflow_datasets as tfds

from artjax.engine.data import text_codes

VERSION = "16.0.0"
STYLES = ("google", "twitter")
CATEGORIES = ("Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink",
              "Travel & Places", "Activities", "Objects", "Symbols", "Flags")
KEY_LEN = 64   # the longest file name (a kiss with two skin tones) has 58 characters
LICENSES = {
    "package": "emoji-datasource 16.0.0, MIT License, (c) 2013 Cal Henderson (iamcal/emoji-data)",
    "google": "Noto Emoji images (c) Google, Apache License 2.0",
    "twitter": "Twemoji images (c) Twitter, Inc and other contributors, CC-BY 4.0",
}


def split_of(key: str) -> str:
  return "test" if int(hashlib.sha256(key.encode()).hexdigest(), 16) % 10 == 0 else "train"


def categories_of(emoji_json: list) -> dict:
  """{image file name: category} for every image, skin-tone variants included; the
  "Component" category dropped."""
  out = {}
  for e in emoji_json:
    if e["category"] not in CATEGORIES:
      continue
    out[e["image"]] = e["category"]
    for v in (e.get("skin_variations") or {}).values():
      out[v["image"]] = e["category"]
  return out


def key_codes(key: str) -> np.ndarray:
  if len(key) > KEY_LEN:
    raise ValueError(f"emoji file name {key!r} is longer than {KEY_LEN} characters")
  return text_codes(key, KEY_LEN)


class Builder(tfds.core.GeneratorBasedBuilder):
  """Emoji in two styles, 64x64 RGBA; `source_dirs`: {style: unpacked npm package dir}."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "emoji-datasource 16.0.0, google and twitter, split by sha256(key).",
                   "1.1.0": "Keys of up to 64 characters (1.0.0 cut the longest names at 48)."}

  def __init__(self, *, source_dirs=None, **kwargs):
    self.source_dirs = dict(source_dirs or {})
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(64, 64, 4), dtype=np.uint8),
            "category": tfds.features.Tensor(shape=(), dtype=np.int32),
            "style": tfds.features.Tensor(shape=(), dtype=np.int32),
            "key": tfds.features.Tensor(shape=(KEY_LEN,), dtype=np.int32),
        }),
        homepage="https://github.com/iamcal/emoji-data",
        metadata=tfds.core.MetadataDict(licenses=LICENSES, styles=list(STYLES),
                                        categories=list(CATEGORIES)),
    )

  def _split_generators(self, dl_manager):
    items = {"train": [], "test": []}
    for s, style in enumerate(STYLES):
      root = self.source_dirs[style]
      with open(os.path.join(root, "emoji.json"), encoding="utf-8") as f:
        cats = categories_of(json.load(f))
      folder = os.path.join(root, "img", style, "64")
      for name in sorted(os.listdir(folder)):
        if name in cats:
          items[split_of(name)].append((s, os.path.join(folder, name), name, cats[name]))
    return {k: self._generate_examples(v) for k, v in items.items()}

  def _generate_examples(self, items):
    from PIL import Image
    for s, path, name, cat in items:
      with Image.open(path) as im:
        rgba = np.asarray(im.convert("RGBA"), np.uint8)
      yield f"{STYLES[s]}/{name}", {"image": rgba, "category": np.int32(CATEGORIES.index(cat)),
                                    "style": np.int32(s), "key": key_codes(name)}
