"""Served models: what `run.py serve` loads at start-up, fixed for the server's life.

Every model is served through its `jax.export` functions (`artjax.deploy`), exported in
memory from a training or quantised workdir, or read from an export directory, so the
service runs exactly what `run.py export` ships. Image GANs use the row sampler
(`rows.jaxexport`: every row carries its request's seed and row index, so requests merge
into one call and each still gets `run.py sample`'s images); music and poetry use the
sampler (one request per call; a poetry request's masks are the sampler's inputs, built on
the host from the export's poetry.npz vocabulary, so every form, acrostic and prime runs
one compiled program per batch size). Each batch size in `buckets` is compiled during warm-up, before the
server reports ready; a call pads its rows to the next bucket.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os

import jax
import numpy as np
from jax import export as jax_export

from artjax import ConfigError, deploy
from artjax.engine import workdir as runs
from artjax.poetry import strict, text

class CompileCounter:
  """XLA compilations in this process since the counter was installed (an executable loaded
  from the persistent compilation cache is a new program too): the service's proof that no
  request compiles once it is ready."""

  def __init__(self):
    self.count = 0
    jax.monitoring.register_event_duration_secs_listener(self._compile)
    jax.monitoring.register_event_listener(self._cache_hit)

  def _compile(self, event: str, duration: float, **_) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
      self.count += 1

  def _cache_hit(self, event: str, **_) -> None:
    if event == "/jax/compilation_cache/cache_hits":
      self.count += 1


_COUNTER: list = []      # JAX's listeners are per process: one counter, made on first use


def compiles() -> int:
  """Compilations since the first call (the service calls it before loading any model)."""
  if not _COUNTER:
    _COUNTER.append(CompileCounter())
  return _COUNTER[0].count


WALK_BATCH = 16      # frames per call of an animation


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
  kind: str              # "images" | "tokens" | "poems"
  manifest: dict
  fn: object             # jitted exported call
  buckets: tuple
  max_num: int           # most rows (images / pieces) one request may ask for
  num_classes: int = 0   # image GANs: 0 = unconditional
  poetry: dict | None = None   # poems: {"vocab": text.Vocab, "steps": T, "size": V}
  walk: object = None          # image GANs: the jitted exported walk (/v1/animate), or None

  @property
  def step(self) -> int:
    return int(self.manifest["step"])

  def describe(self) -> dict:
    return {"name": self.name, "kind": KIND_NAMES[self.kind],
            "model": self.manifest["model"], "step": self.step,
            "weights_bits": self.manifest["weights"]["bits"], "max_num": self.max_num,
            "num_classes": self.num_classes, "buckets": list(self.buckets),
            "formats": list(FORMATS[self.kind]), "animates": self.walk is not None}

  def bucket(self, rows: int) -> int:
    return next(b for b in self.buckets if b >= rows)

  def run_images(self, seeds, rows, labels):
    """uint8 [n, H, W, C] for n rows (padded to a bucket for the call)."""
    n = len(seeds)
    b = self.bucket(n)
    pad = lambda a: np.concatenate([np.asarray(a, np.int32), np.zeros(b - n, np.int32)])
    return np.asarray(self.fn(pad(seeds), pad(rows), pad(labels)))[:n]

  def run_walk(self, seed: int, frames: int, label: int):
    """uint8 [frames, H, W, C]: the walk `run.py animate --seed` renders, WALK_BATCH frames
    per call of one compiled program."""
    out = []
    for i in range(0, frames, WALK_BATCH):
      idx = np.minimum(np.arange(i, i + WALK_BATCH), frames - 1).astype(np.int32)
      out.append(np.asarray(self.walk(np.int32(seed), np.int32(frames), np.int32(label), idx)))
    return np.concatenate(out)[:frames]

  def run_music(self, seed: int, modes, key_guidance: float):
    n = len(modes)
    b = self.bucket(n)
    modes = np.concatenate([np.asarray(modes, np.int32), np.zeros(b - n, np.int32)])
    return np.asarray(self.fn(np.int32(seed), modes, np.float32(key_guidance)))[:n]

  def poem_tables(self, form: str, strict_: bool, acrostic: str = "", prime: str = "") -> tuple:
    """The sampler's mask inputs for a request (ConfigError when it cannot be met)."""
    p = self.poetry
    strict.check_request(p["vocab"], form, acrostic, prime)
    return strict.tables_for(p["vocab"], p["size"], p["steps"], form=form, strict_=strict_,
                             acrostic=acrostic, prime=prime).arrays()

  def run_poems(self, seed: int, form: str, author: int, num: int, arrays):
    """tokens [num, T]: row i equals row i of `run.py sample --num=num --seed=seed`."""
    b = self.bucket(num)
    prompt = np.tile(np.int32([[text.BOS, text.FORM0 + text.FORMS.index(form), author]]), (b, 1))
    return np.asarray(self.fn(np.int32(seed), prompt, *arrays))[:num]

  def author_token(self, author: str) -> int:
    v = self.poetry["vocab"]
    if author and author not in v.authors:
      raise ConfigError(f"author {author!r} is not one of the model's {len(v.authors)} poets "
                        f"(e.g. {', '.join(v.authors[:8])})")
    return v.author_token(author) if author else text.ANY_AUTHOR

  def decode_poems(self, tokens) -> list[str]:
    return [self.poetry["vocab"].decode(row) for row in np.asarray(tokens)]

  def warm_up(self) -> None:
    if self.kind == "poems":
      arrays = self.poem_tables("wujue", False)
      for b in self.buckets:
        jax.block_until_ready(self.run_poems(0, "wujue", text.ANY_AUTHOR, b, arrays))
      return
    if self.walk is not None:
      jax.block_until_ready(self.run_walk(0, 2, 0))
    for b in self.buckets:
      z = np.zeros(b, np.int32)
      if self.kind == "images":
        jax.block_until_ready(self.fn(z, z, z))
      else:
        jax.block_until_ready(self.fn(np.int32(0), z, np.float32(0)))


FORMATS = {"images": ("png", "npz"), "tokens": ("midi", "wav", "zip"),
           "poems": ("json", "text", "png")}
KIND_NAMES = {"images": "images", "tokens": "music", "poems": "poems"}


def _poetry(blob: bytes, manifest: dict) -> dict:
  """The vocabulary and mask shapes of a poetry export's poetry.npz."""
  t = np.load(io.BytesIO(blob))
  authors = tuple(str(a) for a in t["authors"] if str(a))
  vocab = text.Vocab(tuple(str(c) for c in t["chars"]), authors)
  if vocab.char0 != int(t["char0"]):
    raise ConfigError("poetry.npz does not match this version's token layout: export the run again")
  shape = next(i["shape"] for i in manifest["inputs"] if i["name"] == "tone")
  return {"vocab": vocab, "steps": int(shape[1]), "size": int(shape[2])}


def _from_export_dir(path: str):
  manifest = deploy.load_export(path, names=())[1]
  if manifest["kind"] not in FORMATS:
    raise ConfigError(f"{path!r} exports a {manifest['kind']!r} sampler: only image GANs, "
                      "music and poetry Transformers can be served")
  name = deploy.ROWS if manifest["kind"] == "images" else deploy.ARTIFACT
  names = (name,) + ((deploy.WALK,) if deploy.WALK in manifest["files"] else ())
  exps, manifest = deploy.load_export(path, names=names)
  files = {n: deploy.read_file(path, n) for n in manifest["files"] if not n.endswith(".jaxexport")}
  return exps[name], manifest, dict(files, walk=exps.get(deploy.WALK))


def _from_workdir(path: str):
  exps, manifest = deploy.exported(path)
  if manifest["kind"] not in FORMATS:
    raise ConfigError(f"{path!r} is a {manifest['task']} run: serve image GANs, music or "
                      "poetry Transformers, style networks or inpainting networks")
  return (exps["rows"] if manifest["kind"] == "images" else exps["sampler"], manifest,
          dict(exps.get("files", {}), walk=exps.get("walk")))


def load(path: str, name: str, max_num: int, max_batch: int, max_music: int) -> Model:
  """A served model from a workdir (training or quantised) or an export directory."""
  compiles()    # the counter counts from before the first model loads
  if not os.path.isdir(path):
    raise ConfigError(f"--workdir {path!r} does not exist")
  if os.path.exists(os.path.join(path, deploy.MANIFEST)):
    exp, manifest, files = _from_export_dir(path)
  else:
    runs.load_config(path)          # a clear error when it is neither
    exp, manifest, files = _from_workdir(path)
  fn = jax.jit(exp.call)
  if manifest["kind"] == "images":
    limit = manifest["rows"]["max_num"]
    if max_num > limit:
      raise ConfigError(f"--max_num={max_num} exceeds the {limit} rows per request the "
                        f"exported row sampler of {path!r} draws")
    walk = files.get("walk")
    return Model(name, "images", manifest, fn, buckets(max_batch), max_num,
                 int(manifest.get("num_classes", 0)), walk=None if walk is None else jax.jit(walk.call))
  n = min(max_num, max_music)
  if manifest["kind"] == "tokens" and [i["name"] for i in manifest.get("inputs", [])][1:2] != ["modes"]:
    raise ConfigError(f"{path!r} is a Music Transformer on a user's MIDI (f(seed, prompt)): "
                      "/v1/music serves the chorale models only; sample it with run.py sample "
                      "or call its exported sampler")
  if manifest["kind"] == "poems":
    if "poetry.npz" not in files:
      raise ConfigError(f"{path!r} has no poetry.npz beside its sampler: export the run again")
    return Model(name, "poems", manifest, fn, buckets(n), n,
                 poetry=_poetry(files["poetry.npz"], manifest))
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
