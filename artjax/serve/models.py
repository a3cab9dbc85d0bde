"""Served models: what `run.py serve` loads at start-up, fixed for the server's life.

Every model is served through its `jax.export` functions (`artjax.deploy`), exported in
memory from a training or quantised workdir, or read from an export directory, so the
service runs exactly what `run.py export` ships. Image GANs use the row sampler
(`rows.jaxexport`: every row carries its request's seed and row index, so requests merge
into one call and each still gets `run.py sample`'s images); music uses the sampler (one
request per call). Each batch size in `buckets` is compiled during warm-up, before the
server reports ready; a call pads its rows to the next bucket.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
from jax import export as jax_export

from artjax import ConfigError, deploy
from artjax.engine import workdir as runs

COMPILES = {"count": 0}


def _count_compile(event: str, duration: float, **_) -> None:
  if event == "/jax/core/compile/backend_compile_duration":
    COMPILES["count"] += 1


def _count_cache_hit(event: str, **_) -> None:
  """An executable loaded from the persistent compilation cache is a new program too."""
  if event == "/jax/compilation_cache/cache_hits":
    COMPILES["count"] += 1


jax.monitoring.register_event_duration_secs_listener(_count_compile)
jax.monitoring.register_event_listener(_count_cache_hit)


def buckets(max_rows: int) -> tuple:
  out, b = [], 1
  while b < max_rows:
    out.append(b)
    b *= 2
  return tuple(out + [max_rows])


@dataclasses.dataclass
class Model:
  """One served model (see the module docstring)."""
  name: str
  kind: str              # "images" | "tokens"
  manifest: dict
  fn: object             # jitted exported call
  buckets: tuple
  max_num: int           # most rows (images / pieces) one request may ask for
  num_classes: int = 0   # image GANs: 0 = unconditional

  @property
  def step(self) -> int:
    return int(self.manifest["step"])

  def describe(self) -> dict:
    return {"name": self.name, "kind": "images" if self.kind == "images" else "music",
            "model": self.manifest["model"], "step": self.step,
            "weights_bits": self.manifest["weights"]["bits"], "max_num": self.max_num,
            "num_classes": self.num_classes, "buckets": list(self.buckets),
            "formats": list(FORMATS[self.kind])}

  def bucket(self, rows: int) -> int:
    return next(b for b in self.buckets if b >= rows)

  def run_images(self, seeds, rows, labels):
    """uint8 [n, H, W, C] for n rows (padded to a bucket for the call)."""
    n = len(seeds)
    b = self.bucket(n)
    pad = lambda a: np.concatenate([np.asarray(a, np.int32), np.zeros(b - n, np.int32)])
    return np.asarray(self.fn(pad(seeds), pad(rows), pad(labels)))[:n]

  def run_music(self, seed: int, modes, key_guidance: float):
    n = len(modes)
    b = self.bucket(n)
    modes = np.concatenate([np.asarray(modes, np.int32), np.zeros(b - n, np.int32)])
    return np.asarray(self.fn(np.int32(seed), modes, np.float32(key_guidance)))[:n]

  def warm_up(self) -> None:
    for b in self.buckets:
      z = np.zeros(b, np.int32)
      if self.kind == "images":
        jax.block_until_ready(self.fn(z, z, z))
      else:
        jax.block_until_ready(self.fn(np.int32(0), z, np.float32(0)))


FORMATS = {"images": ("png", "npz"), "tokens": ("midi", "wav", "zip")}


def _from_export_dir(path: str):
  manifest = deploy.load_export(path, names=())[1]
  if manifest["kind"] not in FORMATS:
    raise ConfigError(f"{path!r} exports a {manifest['kind']!r} sampler: only image GANs and "
                      "music Transformers can be served")
  name = deploy.ROWS if manifest["kind"] == "images" else deploy.ARTIFACT
  exps, manifest = deploy.load_export(path, names=(name,))
  return exps[name], manifest


def _from_workdir(path: str):
  exps, manifest = deploy.exported(path)
  if manifest["kind"] not in FORMATS:
    raise ConfigError(f"{path!r} is a {manifest['task']} run: serve image GANs, music "
                      "Transformers, style networks or inpainting networks")
  return exps["rows"] if manifest["kind"] == "images" else exps["sampler"], manifest


def load(path: str, name: str, max_num: int, max_batch: int, max_music: int) -> Model:
  """A served model from a workdir (training or quantised) or an export directory."""
  if not os.path.isdir(path):
    raise ConfigError(f"--workdir {path!r} does not exist")
  if os.path.exists(os.path.join(path, deploy.MANIFEST)):
    exp, manifest = _from_export_dir(path)
  else:
    runs.load_config(path)          # a clear error when it is neither
    exp, manifest = _from_workdir(path)
  fn = jax.jit(exp.call)
  if manifest["kind"] == "images":
    limit = manifest["rows"]["max_num"]
    if max_num > limit:
      raise ConfigError(f"--max_num={max_num} exceeds the {limit} rows per request the "
                        f"exported row sampler of {path!r} draws")
    return Model(name, "images", manifest, fn, buckets(max_batch), max_num,
                 int(manifest.get("num_classes", 0)))
  n = min(max_num, max_music)
  return Model(name, "tokens", manifest, fn, buckets(n), n)


def names(paths) -> list[str]:
  """Model names: the directories' base names, made unique."""
  out = []
  for p in paths:
    base = os.path.basename(os.path.normpath(p)) or "model"
    name, i = base, 2
    while name in out:
      name, i = f"{base}-{i}", i + 1
    out.append(name)
  return out
