import time

import numpy as np
import pytest

from artjax import ConfigError
from artjax.engine import data as data_plumbing
from artjax.image import data


def test_digits_split_is_fixed_stratified_and_disjoint(data_dir):
  ds = data.load_images("digits", data_dir)
  # The documented 70/15/15 stratified split of the 1,797 digits (docs/gan.md), pinned.
  for split, n in {"train": 1259, "validation": 269, "test": 269}.items():
    ims, lbs = ds.splits[split]
    assert ims.shape == (n, 8, 8, 1) and ims.dtype == np.uint8 and lbs.shape == (n,)
    assert set(np.unique(lbs)) == set(range(10))
  assert ds.images("train").max() == 255 and ds.images("train").min() == 0
  # Disjoint: no test image is (by index) also in train; all 1,797 are used exactly once.
  from artjax.image.data.digits.digits_builder import load_raw, split_indices
  raw, labels = load_raw()
  parts = split_indices(labels)
  all_idx = np.concatenate(list(parts.values()))
  assert len(all_idx) == len(np.unique(all_idx)) == 1797
  # The builder's records are exactly those images (as multisets per split).
  for split in ("train", "test"):
    got = np.sort(ds.images(split).reshape(len(ds.images(split)), -1), axis=0)
    want = np.sort(raw[parts[split]].reshape(len(parts[split]), -1), axis=0)
    np.testing.assert_array_equal(got, want)


def test_unknown_dataset():
  with pytest.raises(ConfigError, match="unknown dataset 'nope'"):
    data.load_images("nope")


def test_missing_canonical_dataset_fails_fast(tmp_path, monkeypatch):
  monkeypatch.setattr(data_plumbing, "network_reachable", lambda *a, **k: False)
  t = time.time()
  with pytest.raises(ConfigError, match="not prepared"):
    data.load_images("mnist", str(tmp_path))
  assert time.time() - t < 5.0


def test_missing_canonical_dataset_fails_fast_on_a_closed_network(tmp_path, monkeypatch):
  """The real reachability check (not mocked) on a network that refuses every connection,
  as on this machine and CI: one quick error with the offline instructions."""
  import socket

  def refuse(*a, **k):
    raise ConnectionRefusedError("closed network")
  monkeypatch.setattr(socket, "create_connection", refuse)
  assert data_plumbing.network_reachable() is False
  t = time.time()
  with pytest.raises(ConfigError, match="pip install tensorflow") as e:
    data.load_images("fashion_mnist", str(tmp_path))
  assert "not prepared" in str(e.value) and "--config.data.data_dir" in str(e.value)
  assert time.time() - t < 5.0


def test_eval_restricts_the_judged_dataset_to_the_runs_classes():
  import types
  import ml_collections
  from artjax.image.data.dataset import ImageDataset
  from artjax.tasks.image_report import _judged_classes
  splits = {k: (np.zeros((6, 2, 2, 1), np.uint8), np.arange(6, dtype=np.int32) % 3)
            for k in ("train", "validation", "test")}
  ds = ImageDataset("emoji", splits, 3)
  ev = _judged_classes(types.SimpleNamespace(dataset=ds),
                       ml_collections.ConfigDict({"name": "emoji", "classes": (1,)}))
  assert all(list(ev.dataset.labels(k)) == [1, 1] for k in splits)
  other = _judged_classes(types.SimpleNamespace(dataset=ds),     # judged in another dataset
                          ml_collections.ConfigDict({"name": "digits", "classes": (1,)}))
  assert len(other.dataset.labels("train")) == 6
  none = _judged_classes(types.SimpleNamespace(dataset=ds),
                         ml_collections.ConfigDict({"name": "emoji", "classes": ()}))
  assert none.dataset is ds
