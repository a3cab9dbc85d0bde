"""The emoji dataset for real: fetched with npm (two ~70 MB packages), prepared once into the
shared test data dir, split by key so the two styles' drawings of a subject stay together."""

import hashlib

import ml_collections
import numpy as np
import pytest

from artjax.image import data


@pytest.mark.slow
def test_emoji_prepares_with_pairs_inside_one_split(data_dir):
  def cfg(name, resolution=32, alpha=False):
    return ml_collections.ConfigDict({"name": name, "data_dir": data_dir, "resolution": resolution,
                                      "alpha": alpha})
  both = data.load(cfg("emoji"))
  sizes = {k: len(both.labels(k)) for k in both.splits}
  assert sum(sizes.values()) == 2 * 3781, sizes   # 3,786 images per style less 5 swatches
  assert both.num_classes == 9 and both.image_shape == (32, 32, 3)
  for split in both.splits:
    keys, styles = both.meta[split]["key"], both.meta[split]["style"]
    assert sorted(keys[styles == 0]) == sorted(keys[styles == 1])   # every pair together
    buckets = {int(hashlib.sha256(k.encode()).hexdigest(), 16) % 10 for k in keys}
    assert buckets == ({0} if split == "test" else {1} if split == "validation" else set(range(2, 10)))
  google = data.load(cfg("emoji:google", 16, alpha=True))
  assert google.image_shape == (16, 16, 4) and (google.meta["train"]["style"] == 0).all()
  assert len(google.labels("train")) == sizes["train"] // 2
  # the two styles draw the same subjects differently: paired images differ, but less than
  # unrelated ones do
  g, t = (np.asarray(x, np.float32) for x in (both.images("test")[both.meta["test"]["style"] == 0],
                                              both.images("test")[both.meta["test"]["style"] == 1]))
  kg = both.meta["test"]["key"][both.meta["test"]["style"] == 0]
  kt = both.meta["test"]["key"][both.meta["test"]["style"] == 1]
  t = t[np.argsort(kt)][np.argsort(np.argsort(kg))]
  paired = np.abs(g - t).mean()
  shuffled = np.abs(g - np.roll(t, 1, axis=0)).mean()
  assert 0 < paired < 0.8 * shuffled, (paired, shuffled)
