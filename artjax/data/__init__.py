"""Datasets: TFDS image datasets loaded whole into memory (small) for on-device batching.

`load_images(name)` returns an `ImageDataset` with uint8 NHWC arrays per split.
Offline-first: the bundled `digits` builder is prepared on first use; canonical
TFDS datasets (mnist, fashion_mnist, cifar10, ...) are read from prepared
array_record files, and fail fast with a clear message when they are missing
and the network is unreachable.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import socket


import numpy as np

from artjax import ConfigError

ENV_DATA_DIR = "ARTJAX_DATA_DIR"
KNOWN_TFDS = ("mnist", "fashion_mnist", "cifar10", "kmnist", "emnist", "svhn_cropped")
BUNDLED = ("digits", "digits28", "chorale_rolls")
ROLL_DATASETS = ("chorale_rolls",)   # images that are piano rolls [frames, 88 keys]


def default_data_dir() -> str:
  env = os.environ.get(ENV_DATA_DIR)
  if env:
    return env
  cache = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
  return os.path.join(cache, "artjax", "tensorflow_datasets")


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """A labelled image dataset, every split as uint8 NHWC arrays."""
  name: str
  splits: dict  # split name -> (images uint8 [N,H,W,C], labels int32 [N])
  num_classes: int

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.splits["train"][0].shape[1:])

  def images(self, split: str) -> np.ndarray:
    return self.splits[split][0]

  def labels(self, split: str) -> np.ndarray:
    return self.splits[split][1]


def _network_reachable(host="storage.googleapis.com", port=443, timeout=2.0) -> bool:
  try:
    with socket.create_connection((host, port), timeout=timeout):
      return True
  except OSError:
    return False


def _read_source(source, image_key="image", label_key="label"):
  recs = source.__getitems__(list(range(len(source))))
  images = np.stack([np.asarray(r[image_key]) for r in recs]).astype(np.uint8)
  if images.ndim == 3:
    images = images[..., None]
  labels = np.asarray([int(r[label_key]) for r in recs], np.int32)
  return images, labels


def _digits(data_dir: str) -> ImageDataset:
  from artjax.data.digits import Builder
  builder = Builder(data_dir=data_dir, file_format="array_record")
  _prepare_once(builder)
  src = builder.as_data_source()
  splits = {k: _read_source(src[k]) for k in ("train", "validation", "test")}
  return ImageDataset("digits", splits, 10)


def _prepare_once(builder) -> None:
  """Prepares `builder` if needed; with several processes only process 0 writes and the
  others wait at a barrier (every process passes it, prepared or not)."""
  import jax
  import tensorflow_datasets as tfds
  multi = jax.process_count() > 1
  if not _is_prepared(builder) and (not multi or jax.process_index() == 0):
    tfds.disable_progress_bar()
    builder.download_and_prepare()
  if multi:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(f"artjax-prepare-{builder.name}")


def _is_prepared(builder) -> bool:
  return os.path.exists(os.path.join(os.fspath(builder.data_path), "dataset_info.json"))


def _canonical(name: str, data_dir: str) -> ImageDataset:
  import tensorflow_datasets as tfds
  try:
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
  except Exception as e:  # unknown name or a builder that needs TensorFlow to import
    raise ConfigError(f"dataset {name!r}: TFDS cannot build it ({e})") from e
  if not _is_prepared(builder):
    if not _network_reachable():
      raise ConfigError(
          f"dataset {name!r} is not prepared under {data_dir} and the network is unreachable. "
          f"On a machine with network: pip install tensorflow; python -c \"import tensorflow_datasets "
          f"as tfds; tfds.builder('{name}', data_dir='DIR', file_format='array_record')"
          f".download_and_prepare()\", then copy DIR here and pass --config.data.data_dir=DIR (or set {ENV_DATA_DIR}).")
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


_CACHE: dict = {}


def load_images(name: str, data_dir: str | None = None) -> ImageDataset:
  """Loads a whole image dataset into host memory (cached per process)."""
  data_dir = data_dir or default_data_dir()
  key = (name, data_dir)
  if key in _CACHE:
    return _CACHE[key]
  if name not in BUNDLED and name not in KNOWN_TFDS:
    raise ConfigError(f"unknown dataset {name!r}; choose one of {BUNDLED + KNOWN_TFDS}")
  if name == "digits":
    ds = _digits(data_dir)
  elif name == "digits28":
    ds = _upsampled(load_images("digits", data_dir), "digits28", (28, 28))
  elif name == "chorale_rolls":
    ds = chorale_segments(load_chorales(data_dir))
  else:
    ds = _canonical(name, data_dir)
  _CACHE[key] = ds
  return ds


def subset(ds: ImageDataset, classes=(), shots: int = 0) -> ImageDataset:
  """Only `classes` (all when empty) in every split; the first `shots` train examples
  (all when 0) -- the few-shot "new style" set. Deterministic."""
  splits = {}
  for k, (ims, lbs) in ds.splits.items():
    keep = np.isin(lbs, classes) if len(classes) else np.ones(len(lbs), bool)
    ims, lbs = ims[keep], lbs[keep]
    if k == "train" and shots:
      if shots > len(lbs):
        raise ConfigError(f"data.shots={shots} but only {len(lbs)} training examples remain")
      ims, lbs = ims[:shots], lbs[:shots]
    if not len(lbs):
      raise ConfigError(f"data.classes={tuple(classes)} leaves the {k} split empty")
    splits[k] = (ims, lbs)
  return ImageDataset(ds.name, splits, ds.num_classes)


def check_dataset_name(name: str) -> None:
  if name not in BUNDLED and name not in KNOWN_TFDS:
    raise ConfigError(f"unknown dataset {name!r}; choose one of {BUNDLED + KNOWN_TFDS}")


# Image shapes known without loading, so configs can be validated before any I/O.
KNOWN_SHAPES = {"chorale_rolls": (8, 88, 1), "digits": (8, 8, 1), "digits28": (28, 28, 1), "mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1),
                "kmnist": (28, 28, 1), "emnist": (28, 28, 1), "cifar10": (32, 32, 3),
                "svhn_cropped": (32, 32, 3)}
KNOWN_CLASSES = {"chorale_rolls": 2, "digits": 10, "digits28": 10, "mnist": 10, "fashion_mnist": 10, "kmnist": 10, "emnist": 62,
                 "cifar10": 10, "svhn_cropped": 10}


@dataclasses.dataclass(frozen=True)
class Chorales:
  """Bach chorales per split: piano rolls (uint8 [Tq, 88]), SATB voices (int32 [T16, 4]),
  mode (0 major, 1 minor), tonic pitch class, BWV numbers."""
  splits: dict   # split -> dict(rolls=list, voices=list, mode=[N], tonic=[N], bwv=[N,2])

  def rolls(self, split: str) -> list:
    return self.splits[split]["rolls"]

  def modes(self, split: str) -> np.ndarray:
    return self.splits[split]["mode"]


def load_chorales(data_dir: str | None = None) -> Chorales:
  """The chorales builder's splits, prepared on first use (about 20 s), cached per process."""
  data_dir = data_dir or default_data_dir()
  key = ("chorales", data_dir)
  if key in _CACHE:
    return _CACHE[key]
  import importlib.util
  if importlib.util.find_spec("music21") is None:   # the corpus ships inside music21
    raise ConfigError("the chorales dataset needs music21: pip install music21")
  from artjax.data.chorales import Builder
  builder = Builder(data_dir=data_dir, file_format="array_record")
  _prepare_once(builder)
  src = builder.as_data_source()
  splits = {}
  for k in ("train", "validation", "test"):
    recs = src[k].__getitems__(list(range(len(src[k]))))
    n = [int(r["length"]) for r in recs]
    splits[k] = {"rolls": [np.asarray(r["roll"][:m], np.uint8) for r, m in zip(recs, n)],
                 "voices": [np.asarray(r["voices"][:4 * m], np.int32) for r, m in zip(recs, n)],
                 "mode": np.asarray([int(r["mode"]) for r in recs], np.int32),
                 "tonic": np.asarray([int(r["tonic"]) for r in recs], np.int32),
                 "bwv": np.asarray([r["bwv"] for r in recs], np.int32)}
  ds = Chorales(splits)
  _CACHE[key] = ds
  return ds


SEGMENT_FRAMES, SEGMENT_STRIDE = 8, 2


def chorale_segments(ch: Chorales, frames: int = SEGMENT_FRAMES,
                     stride: int = SEGMENT_STRIDE) -> ImageDataset:
  """Piano-roll segments as images: 2 bars of 4/4 (8 quarter-note frames) x 88 keys, uint8
  0/255, labelled by the chorale's mode (0 major, 1 minor), every `stride` frames of every
  chorale of each split. The music GAN's data ("chorale_rolls")."""
  splits = {}
  for k in ("train", "validation", "test"):
    ims, lbs = [], []
    for roll, mode in zip(ch.rolls(k), ch.modes(k)):
      for s in range(0, len(roll) - frames + 1, stride):
        ims.append(roll[s:s + frames])
        lbs.append(mode)
    splits[k] = (np.stack(ims)[..., None] * np.uint8(255), np.asarray(lbs, np.int32))
  return ImageDataset("chorale_rolls", splits, 2)


@dataclasses.dataclass(frozen=True)
class Poems:
  """Tang poems per split: split -> dict(body=[str], title=[str], author=[str], form=[N])
  (form: index into artjax.data.poetry.FORMS)."""
  splits: dict

  def bodies(self, split: str) -> list:
    return self.splits[split]["body"]


NPM_PACKAGE = "chinese-poetry"


def _npm_fetch(cache: str) -> None:
  """`npm pack chinese-poetry` into `cache`, keeping only the Tang-poem JSON files."""
  import re
  import shutil
  import subprocess
  import tarfile
  npm = shutil.which("npm")
  if npm is None:
    raise ConfigError("no poems to read: pass --config.data.source_dir=DIR (a checkout of "
                      "github.com/chinese-poetry/chinese-poetry or an unpacked `npm pack "
                      "chinese-poetry`), or install npm so artjax can fetch the package")
  os.makedirs(cache, exist_ok=True)
  print(f"fetching the {NPM_PACKAGE} npm package (85 MB) into {cache} ...", flush=True)
  try:
    subprocess.run([npm, "pack", NPM_PACKAGE, "--pack-destination", cache], check=True,
                   capture_output=True, timeout=900)
  except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
    detail = getattr(e, "stderr", b"") or b""
    raise ConfigError(f"`npm pack {NPM_PACKAGE}` failed ({detail.decode(errors='replace').strip()[-200:]}); "
                      "pass --config.data.source_dir=DIR instead") from e
  tgz = sorted(glob.glob(os.path.join(cache, f"{NPM_PACKAGE}-*.tgz")))[-1]
  with tarfile.open(tgz) as t:
    keep = [m for m in t.getmembers() if re.search(r"quantangshi/poet\.tang\.\d+\.json$", m.name)]
    t.extractall(cache, members=keep, filter="data")
  os.remove(tgz)


def poetry_sources(source_dir: str, data_dir: str) -> list[str]:
  """The Tang-poem JSON files: under `source_dir`, else a fetched npm package (cached)."""
  from artjax.data.poetry import find_sources
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
    _npm_fetch(cache)
  return find_sources(cache)


def _text(codes, n=None) -> str:
  codes = np.asarray(codes)
  return "".join(chr(int(c)) for c in (codes[:n] if n is not None else codes[codes > 0]))


def load_poetry(source_dir: str = "", data_dir: str | None = None) -> Poems:
  """The poetry builder's splits, prepared on first use, cached per process."""
  data_dir = data_dir or default_data_dir()
  key = ("poetry", data_dir)
  if key in _CACHE:
    return _CACHE[key]
  from artjax.data.poetry import Builder
  builder = Builder(data_dir=data_dir, file_format="array_record")
  if not _is_prepared(builder):
    builder = Builder(data_dir=data_dir, file_format="array_record",
                      source_files=poetry_sources(source_dir, data_dir))
    _prepare_once(builder)
  src = builder.as_data_source()
  splits = {}
  for k in ("train", "validation", "test"):
    recs = src[k].__getitems__(list(range(len(src[k]))))
    splits[k] = {"body": [_text(r["body"], int(r["length"])) for r in recs],
                 "title": [_text(r["title"]) for r in recs],
                 "author": [_text(r["author"]) for r in recs],
                 "form": np.asarray([int(r["form"]) for r in recs], np.int32)}
  ds = Poems(splits)
  _CACHE[key] = ds
  return ds
