"""scikit-learn's 8x8 digits as a TensorFlow-Datasets builder.

The 1,797 images ship inside scikit-learn, so nothing is downloaded. Pixels are
the original 0..16 intensities rescaled to uint8 0..255 (round(v * 255 / 16)).

Split (fixed, stratified by class, seed 0 of numpy's PCG64):
  train 1,259 / validation 269 / test 269  (70% / 15% / 15%, per class).
The files are written in TFDS's deterministic shuffled order.
"""

import numpy as np
import tensorflow_datasets as tfds

SPLIT_SIZES = {"train": 1259, "validation": 269, "test": 269}
_SEED = 0


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
  """Stratified 70/15/15 split of `labels`' indices; deterministic."""
  rng = np.random.Generator(np.random.PCG64(_SEED))
  parts = {"train": [], "validation": [], "test": []}
  for c in np.unique(labels):
    idx = np.flatnonzero(labels == c)
    idx = idx[rng.permutation(len(idx))]
    n_val = int(round(0.15 * len(idx)))
    n_test = int(round(0.15 * len(idx)))
    parts["validation"].append(idx[:n_val])
    parts["test"].append(idx[n_val:n_val + n_test])
    parts["train"].append(idx[n_val + n_test:])
  out = {k: np.sort(np.concatenate(v)) for k, v in parts.items()}
  return out


def load_raw() -> tuple[np.ndarray, np.ndarray]:
  from sklearn.datasets import load_digits
  d = load_digits()
  images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  return images, d.target.astype(np.int64)


class Builder(tfds.core.GeneratorBasedBuilder):
  """scikit-learn digits, 8x8x1 uint8, 10 classes."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: stratified 70/15/15 split."}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
            "label": tfds.features.Tensor(shape=(), dtype=np.int64),
        }),
        supervised_keys=("image", "label"),
        homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
        metadata=tfds.core.MetadataDict(num_classes=10),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Everything ships with scikit-learn.
    images, labels = load_raw()
    parts = split_indices(labels)
    return {name: self._generate_examples(images, labels, idx)
            for name, idx in parts.items()}

  def _generate_examples(self, images, labels, idx):
    for i in idx:
      yield int(i), {"image": images[i], "label": labels[i]}
