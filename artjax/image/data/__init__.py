"""Image datasets loaded whole into host memory (small) for on-device batching.

`load_images(name)` returns an `ImageDataset` with uint8 NHWC arrays per split.
Offline-first: the bundled `digits` builder is prepared on first use; canonical
TFDS datasets (mnist, fashion_mnist, cifar10, ...) are read from prepared
array_record files, and fail fast with a clear message when they are missing
and the network is unreachable.
"""

from __future__ import annotations


import numpy as np

from artjax import ConfigError

from artjax.engine import data as data_lib
from artjax.image.data.dataset import ImageDataset
from artjax.image.data import emoji_data, folder_data

KNOWN_TFDS = ("mnist", "fashion_mnist", "cifar10", "kmnist", "emnist", "svhn_cropped")
BUNDLED = ("digits", "digits28")



def _read_source(source, image_key="image", label_key="label"):
  recs = source.__getitems__(list(range(len(source))))
  images = np.stack([np.asarray(r[image_key]) for r in recs]).astype(np.uint8)
  if images.ndim == 3:
    images = images[..., None]
  labels = np.asarray([int(r[label_key]) for r in recs], np.int32)
  return images, labels


def _digits(data_dir: str) -> ImageDataset:
  from artjax.image.data.digits import Builder
  builder = Builder(data_dir=data_dir, file_format="array_record")
  data_lib.prepare_once(builder)
  src = builder.as_data_source()
  splits = {k: _read_source(src[k]) for k in ("train", "validation", "test")}
  return ImageDataset("digits", splits, 10)



def _canonical(name: str, data_dir: str) -> ImageDataset:
  import tensorflow_datasets as tfds
  try:
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
  except Exception as e:  # unknown name or a builder that needs TensorFlow to import
    raise ConfigError(f"dataset {name!r}: TFDS cannot build it ({e})") from e
  if not data_lib.is_prepared(builder):
    if not data_lib.network_reachable():
      raise ConfigError(
          f"dataset {name!r} is not prepared under {data_dir} and the network is unreachable. "
          f"On a machine with network: pip install tensorflow; python -c \"import tensorflow_datasets "
          f"as tfds; tfds.builder('{name}', data_dir='DIR', file_format='array_record')"
          f".download_and_prepare()\", then copy DIR here and pass --config.data.data_dir=DIR (or set {data_lib.ENV_DATA_DIR}).")
    try:
      builder.download_and_prepare()
    except ImportError as e:
      raise ConfigError(f"preparing {name!r} needs TensorFlow: pip install tensorflow ({e})") from e
  src = builder.as_data_source()
  splits = {}
  available = list(src.keys())
  for ours, candidates in (("train", ["train"]), ("validation", ["validation", "valid"]),
                           ("test", ["test"])):
    got = next((c for c in candidates if c in available), None)
    if got is not None:
      splits[ours] = _read_source(src[got])
  if "validation" not in splits:
    # Carve a fixed 5,000 (or 10%) validation split off the end of train.
    ims, lbs = splits["train"]
    n_val = min(5000, len(ims) // 10)
    splits["validation"] = (ims[-n_val:], lbs[-n_val:])
    splits["train"] = (ims[:-n_val], lbs[:-n_val])
  num_classes = int(builder.info.features["label"].num_classes) if hasattr(
      builder.info.features["label"], "num_classes") else int(splits["train"][1].max()) + 1
  return ImageDataset(name, splits, num_classes)


def _upsampled(ds: ImageDataset, name: str, size) -> ImageDataset:
  """Bilinear upsampling of every split: an offline stand-in with MNIST's 28x28 shape."""
  from PIL import Image
  def up(ims):
    return np.stack([np.asarray(Image.fromarray(im[..., 0]).resize(size, Image.BILINEAR))
                     for im in ims])[..., None]
  return ImageDataset(name, {k: (up(v[0]), v[1]) for k, v in ds.splits.items()}, ds.num_classes)



def load_images(name: str, data_dir: str | None = None) -> ImageDataset:
  """Loads a whole image dataset into host memory (cached per process)."""
  data_dir = data_dir or data_lib.default_data_dir()
  key = (name, data_dir)
  if key in data_lib.CACHE:
    return data_lib.CACHE[key]
  check_dataset_name(name)
  if name == "digits":
    ds = _digits(data_dir)
  elif name == "digits28":
    ds = _upsampled(load_images("digits", data_dir), "digits28", (28, 28))
  else:
    ds = _canonical(name, data_dir)
  data_lib.CACHE[key] = ds
  return ds


def subset(ds: ImageDataset, classes=(), shots: int = 0, seed: int = -1) -> ImageDataset:
  """Only `classes` (all when empty) in every split; `shots` train examples (all when 0) --
  the few-shot "new style" set: the first ones, or with `seed` >= 0 a random draw by
  numpy's PCG64 with that seed (kept in the dataset's order). Deterministic."""
  splits, meta = {}, {}
  for k, (ims, lbs) in ds.splits.items():
    keep = np.isin(lbs, classes) if len(classes) else np.ones(len(lbs), bool)
    if k == "train" and shots:
      if shots > keep.sum():
        raise ConfigError(f"data.shots={shots} but only {keep.sum()} training examples remain")
      rows = np.flatnonzero(keep)
      if seed >= 0:
        rows = np.random.default_rng(seed).permutation(rows)
      keep[rows[shots:]] = False
    if not keep.any():
      raise ConfigError(f"data.classes={tuple(classes)} leaves the {k} split empty")
    splits[k] = (ims[keep], lbs[keep])
    meta[k] = {n: np.asarray(v)[keep] for n, v in ds.meta.get(k, {}).items()}
  return ImageDataset(ds.name, splits, ds.num_classes, meta, class_names=ds.class_names)


def check_dataset_name(name: str) -> None:
  if name.startswith(folder_data.PREFIX):
    return
  if name not in BUNDLED and name not in KNOWN_TFDS and name not in emoji_data.NAMES:
    raise ConfigError(f"unknown dataset {name!r}; choose one of "
                      f"{BUNDLED + emoji_data.NAMES + KNOWN_TFDS}")


def image_shape(d) -> tuple:
  """The [H, W, C] of data config `d`'s images, known without loading (a ConfigError for a
  bad name or resolution)."""
  check_dataset_name(d.name)
  if d.name in emoji_data.NAMES:
    return emoji_data.shape(d)
  if d.name.startswith(folder_data.PREFIX):
    return folder_data.shape(d)
  return KNOWN_SHAPES[d.name]


def num_classes(d) -> int:
  """Classes of data config `d` (a labelled folder: counted when it is scanned)."""
  check_dataset_name(d.name)
  if d.name.startswith(folder_data.PREFIX):
    return folder_data.num_classes(d)
  return emoji_data.num_classes(d.name) if d.name in emoji_data.NAMES else KNOWN_CLASSES[d.name]


def load(d) -> ImageDataset:
  """The dataset a data config names (`name`, `data_dir`; emoji: `resolution`, `alpha`)."""
  if d.name in emoji_data.NAMES:
    return emoji_data.load(d.name, d.data_dir or None, int(d.resolution), bool(d.alpha))
  if d.name.startswith(folder_data.PREFIX):
    return folder_data.load(d)
  return load_images(d.name, d.data_dir or None)


# Image shapes known without loading, so configs can be validated before any I/O.
KNOWN_SHAPES = {"digits": (8, 8, 1), "digits28": (28, 28, 1), "mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1),
                "kmnist": (28, 28, 1), "emnist": (28, 28, 1), "cifar10": (32, 32, 3),
                "svhn_cropped": (32, 32, 3)}
KNOWN_CLASSES = {"digits": 10, "digits28": 10, "mnist": 10, "fashion_mnist": 10, "kmnist": 10, "emnist": 62,
                 "cifar10": 10, "svhn_cropped": 10}


