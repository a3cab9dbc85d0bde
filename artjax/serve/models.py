"""Served models: what `run.py serve` loads at start-up, fixed for the server's life.

Every model is served through its `jax.export` functions (`artjax.deploy`), exported in
memory from a training or quantised workdir, or read from an export directory, so the
service runs exactly what `run.py export` ships. The export's sampler kind names the modality
that serves it (artjax.serve.modalities: images, music, poems), whose `make` builds the served
model: image GANs use the row sampler (requests merge into one call), music and poetry the
sampler (one request per call). Each batch size in `buckets` is compiled during warm-up,
before the server reports ready; a call pads its rows to the next bucket.
"""

from __future__ import annotations

import os

import jax

from artjax import ConfigError, deploy
from artjax.engine import workdir as runs
from artjax.serve import modalities
from artjax.serve.served import Model, compiles

__all__ = ["Model", "compiles", "load", "names"]


def _from_export_dir(path: str):
  manifest = deploy.load_export(path, names=())[1]
  modality = _modality(manifest, f"{path!r} exports a {manifest['kind']!r} sampler")
  name = modality.EXPORTED
  names = (name,) + ((deploy.WALK,) if deploy.WALK in manifest["files"] else ())
  exps, manifest = deploy.load_export(path, names=names)
  files = {n: deploy.read_file(path, n) for n in manifest["files"] if not n.endswith(".jaxexport")}
  return exps[name], manifest, dict(files, walk=exps.get(deploy.WALK))


def _from_workdir(path: str):
  exps, manifest = deploy.exported(path)
  modality = _modality(manifest, f"{path!r} is a {manifest['task']} run")
  return (exps[modality.IN_MEMORY], manifest,
          dict(exps.get("files", {}), walk=exps.get("walk")))


def _modality(manifest: dict, what: str):
  """The serving module of an export's sampler kind (ConfigError when none serves it)."""
  if manifest["kind"] not in modalities.BY_SAMPLE_KIND:
    raise ConfigError(f"{what}: serve image GANs, music or poetry Transformers, style "
                      "networks or inpainting networks")
  return modalities.BY_SAMPLE_KIND[manifest["kind"]]


def load(path: str, name: str, max_num: int, max_batch: int, max_music: int) -> Model:
  """A served model from a workdir (training or quantised) or an export directory, built by
  its modality's `make` (artjax.serve.modalities)."""
  compiles()    # the counter counts from before the first model loads
  if not os.path.isdir(path):
    raise ConfigError(f"--workdir {path!r} does not exist")
  if os.path.exists(os.path.join(path, deploy.MANIFEST)):
    exp, manifest, files = _from_export_dir(path)
  else:
    runs.load_config(path)          # a clear error when it is neither
    exp, manifest, files = _from_workdir(path)
  limits = {"max_num": max_num, "max_batch": max_batch, "max_music": max_music}
  return _modality(manifest, path).make(name, manifest, jax.jit(exp.call), files, limits, path)


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
