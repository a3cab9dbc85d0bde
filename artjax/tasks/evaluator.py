"""The evaluator network per dataset: a classifier whose features and class probabilities
drive the metrics. This module only loads it: training it is a run of the one loop whose
config is the `evaluator` block of the task's config (configs/evaluator.py:DATASET), started
once per dataset and cached in the data dir (`requirement` names that run;
artjax.tasks.training.ensure_trained trains it)."""

from __future__ import annotations

import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from artjax import ConfigError
from artjax.engine import checkpoint
from artjax.engine import data as data_plumbing
from artjax.tasks import datasets as data_lib
from artjax.tasks.classifier import ClassifierTask
from artjax.engine import progress


#: data fields besides name and data_dir that decide which images a dataset holds
DATASET_FIELDS = ("resolution", "alpha", "fit", "labels", "mirror", "strict", "max_pixels",
                  "split_by")


class MissingEvaluator(ConfigError):
  """No trained evaluator for a dataset (train it: artjax.engine.loop.ensure_trained)."""


def _fingerprint(ds, config) -> str:
  h = hashlib.sha256()
  for split in ("train", "validation"):
    h.update(np.ascontiguousarray(ds.images(split)).tobytes())
    h.update(np.ascontiguousarray(ds.labels(split)).tobytes())
  cfg = config.copy_and_resolve_references()
  cfg.data.data_dir = ""
  h.update(cfg.to_json(sort_keys=True).encode())
  return h.hexdigest()[:12]


def requirement(task_config):
  """(config, workdir) of the run that trains the evaluator of `task_config`'s dataset: its
  `evaluator` block with the task's dataset (or the block's `train_on` dataset) and data dir."""
  if "evaluator" not in task_config:
    raise ConfigError("this config has no `evaluator` block (the classifier config behind "
                      "FDD/IS: configs/evaluator.py:DATASET)")
  dataset = task_config.evaluator.get("train_on") or task_config.data.name
  data_dir = task_config.data.data_dir or data_plumbing.default_data_dir()
  config = task_config.evaluator.copy_and_resolve_references()
  config.data.name, config.data.data_dir = dataset, data_dir
  with config.unlocked():
    if "train_on" in config:   # not a classifier setting: the run and its cache ignore it
      del config["train_on"]
    for k in DATASET_FIELDS:   # what else names the images (emoji, folder:)
      if k in task_config.data:
        config.data[k] = task_config.data[k]
  ds = data_lib.load(config.data)
  safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in dataset)
  workdir = os.path.join(data_dir, "artjax_evaluators", f"{safe}-{_fingerprint(ds, config)}")
  return config, workdir


class Evaluator:
  """features(images uint8) -> [N, D]; probs(images) -> [N, classes]; test accuracy."""

  def __init__(self, task_config):
    config, self.workdir = requirement(task_config)
    dataset = config.data.name
    judged = config.data.copy_and_resolve_references()
    judged.name = task_config.data.name   # the data it judges (train_on: learnt elsewhere)
    self.dataset = data_lib.load(judged)
    if checkpoint.latest_step(self.workdir) is None:
      raise MissingEvaluator(f"no trained {dataset} evaluator in {self.workdir}: train it with "
                             f"`python run.py train --config=configs/evaluator.py:{dataset} "
                             f"--workdir={self.workdir}` (run.py train/eval do it on first use)")
    self.task = ClassifierTask(config)
    self.params = checkpoint.restore_checked(self.workdir, self.task.init_state,
                                             config.seed)["params"]
    self._feats = jax.jit(self.task.features)
    self._logits = jax.jit(self.task.apply)
    info_path = os.path.join(self.workdir, "evaluator.json")
    if not os.path.exists(info_path):
      learnt = data_lib.load(config.data)
      acc = float(np.mean(np.argmax(self.probs(learnt.images("test")), 1)
                          == learnt.labels("test")))
      with open(info_path, "w") as f:
        json.dump({"dataset": dataset, "test_accuracy": acc}, f)
    with open(info_path) as f:
      self.info = json.load(f)
    self.test_accuracy = self.info["test_accuracy"]

  def _batched(self, fn, images, bs=2048):
    images = np.asarray(images)
    return np.concatenate([np.asarray(fn(self.params, jnp.asarray(images[i:i + bs])))
                           for i in range(0, len(images), bs)])

  def features(self, images) -> np.ndarray:
    return self._batched(self._feats, images)

  def pixel_features(self):
    """A pure function: float images in [-1, 1] -> features (for perceptual losses)."""
    params, task = self.params, self.task
    return lambda x: task.pixel_features(params, x)

  def probs(self, images) -> np.ndarray:
    return np.asarray(jax.nn.softmax(self._batched(self._logits, images), axis=-1))


class InceptionFeatures:
  """The FID Inception-v3's 2048-d pool features of uint8 images, from a weights file the
  user gives (artjax.image.inception_weights), in batches with a progress bar."""

  def __init__(self, path: str, batch_size: int = 50):
    from artjax.image import inception_weights
    from artjax.image.models import inception
    self.params = jax.device_put(inception_weights.load(path))
    self._apply = jax.jit(inception.apply)
    self.batch_size = batch_size

  def __call__(self, images) -> np.ndarray:
    from tqdm.auto import tqdm
    images = np.asarray(images)
    out = []
    for i in tqdm(range(0, len(images), self.batch_size), desc="inception features",
                  leave=progress.leave(), disable=len(images) <= self.batch_size):
      x = jnp.asarray(images[i:i + self.batch_size], jnp.float32) / 255.0
      out.append(np.asarray(self._apply(self.params, x), np.float64))
    return np.concatenate(out)


class ImageNetFeatures:
  """EfficientNet-Lite0's pooled 1280-d ImageNet features of uint8 images (greyscale repeated
  to RGB), resized bilinearly to `size` px: a feature space no artjax model trains against
  except the projected GAN's discriminator (artjax.image.pretrained)."""

  def __init__(self, name: str = "lite0", size: int = 128, batch_size: int = 64):
    from artjax.image import pretrained
    net = pretrained.load(name)
    self.name, self.size, self.batch_size = name, size, batch_size

    def pooled(x):
      x = jax.image.resize(x, (x.shape[0], size, size, 3), "linear", antialias=False)
      return net(x)[0]
    self._apply = jax.jit(pooled)

  def __call__(self, images) -> np.ndarray:
    from tqdm.auto import tqdm
    images = np.asarray(images)
    if images.shape[-1] == 1:
      images = np.repeat(images, 3, axis=-1)
    out = []
    for i in tqdm(range(0, len(images), self.batch_size), desc=f"{self.name} features",
                  leave=progress.leave(), disable=len(images) <= self.batch_size):
      out.append(np.asarray(self._apply(jnp.asarray(images[i:i + self.batch_size], jnp.float32)),
                            np.float64))
    return np.concatenate(out)
