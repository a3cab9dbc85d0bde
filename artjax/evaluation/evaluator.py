"""The evaluator network per dataset: a classifier trained once by the shared loop,
cached in the data dir, whose features and class probabilities drive the metrics."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from artjax import ConfigError, data as data_lib


def evaluator_config(name: str = "digits") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.task = "classifier"
  c.seed = 0
  c.data = ml_collections.ConfigDict({"name": name, "data_dir": "", "shift": 1})
  c.model = ml_collections.ConfigDict({"width": 256, "depth": 2, "dropout": 0.1})
  c.optim = ml_collections.ConfigDict({
      "name": "adamw", "lr": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 1e-4,
      "schedule": "cosine", "warmup_steps": 100, "end_lr_frac": 0.0, "clip_norm": 1.0,
      "grad_accum": 1})
  c.train = ml_collections.ConfigDict({
      "steps": 2000 if name == "digits" else 6000, "batch_size": 128, "steps_per_dispatch": 100,
      "log_every": 100, "ckpt_every": 0, "keep": 1, "sample_every": 0, "eval_every": 0,
      "dtype": "fp32"})
  c.mesh = ml_collections.ConfigDict({"num_devices": 1})
  return c


def _fingerprint(ds, config) -> str:
  h = hashlib.sha256()
  for split in ("train", "validation"):
    h.update(np.ascontiguousarray(ds.images(split)).tobytes())
    h.update(np.ascontiguousarray(ds.labels(split)).tobytes())
  cfg = config.copy_and_resolve_references()
  cfg.data.data_dir = ""
  h.update(cfg.to_json(sort_keys=True).encode())
  return h.hexdigest()[:12]


class Evaluator:
  """features(images uint8) -> [N, D]; probs(images) -> [N, classes]; test accuracy."""

  def __init__(self, dataset: str, data_dir: str | None = None, *, verbose: bool = True):
    from artjax.sample import load_state
    from artjax.train import train
    data_dir = data_dir or data_lib.default_data_dir()
    self.dataset = data_lib.load_images(dataset, data_dir)
    config = evaluator_config(dataset)
    config.data.data_dir = data_dir
    self.workdir = os.path.join(data_dir, "artjax_evaluators", f"{dataset}-{_fingerprint(self.dataset, config)}")
    info_path = os.path.join(self.workdir, "evaluator.json")
    state = None
    if os.path.exists(info_path):
      try:
        self.task, state = load_state(self.workdir)
      except ConfigError:   # written by an incompatible version of the code: retrain
        shutil.rmtree(self.workdir)
    if state is None:
      if verbose:
        print(f"training the {dataset} evaluator once (cached in {self.workdir})", flush=True)
      train(config, self.workdir, quiet=True)
      self.task, state = load_state(self.workdir)
    self.params = state["params"]
    self._feats = jax.jit(self.task.features)
    self._logits = jax.jit(self.task.apply)
    if not os.path.exists(info_path):
      acc = float(np.mean(np.argmax(self.probs(self.dataset.images("test")), 1)
                          == self.dataset.labels("test")))
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

  def probs(self, images) -> np.ndarray:
    return np.asarray(jax.nn.softmax(self._batched(self._logits, images), axis=-1))
