"""`run.py merge`: fold LoRA factors into plain weights and write a plain workdir (any task
whose fine-tuning is LoRA: the GANs and the Music Transformer)."""

from __future__ import annotations

import os

import jax
from absl import flags

from artjax import ConfigError
from artjax.commands.options import need
from artjax.engine import workdir as runs
from artjax.tasks import build_task, open_run


def merged_state(task, state) -> tuple:
  """(plain config, plain task, plain state): the LoRA run as a run without fine-tuning.
  Model weights have LoRA folded in; step, rng, EMA and the rest carry over; optimizer
  states are fresh (their shapes belong to the LoRA factors)."""
  ft = task.finetune
  if ft is not None and ft.method == "adapter":
    raise ConfigError("Houlsby adapters have a nonlinearity and cannot be folded into the "
                      "weights; sample from the adapted workdir directly")
  if ft is None or not ft.mergeable:
    raise ConfigError("this run was not fine-tuned with LoRA: nothing to merge")
  config = task.config.copy_and_resolve_references()
  config.finetune.method = "none"
  config.finetune.init_from = ""
  plain = build_task(config)
  fresh = jax.jit(plain.init_state, static_argnums=0)(config.seed)
  folded = ft.merged(state)
  out = {k: folded[k] if k in folded else (fresh[k] if k in plain.opt_keys else state[k])
         for k in fresh}
  return config, plain, out


def merge_workdir(workdir: str, out: str) -> None:
  task, state = open_run(workdir)
  if os.path.exists(os.path.join(out, "checkpoints")):
    raise ConfigError(f"{out!r} already holds checkpoints; choose an empty --out")
  try:
    config, _, merged = merged_state(task, state)
  except ConfigError as e:
    raise ConfigError(f"{workdir!r}: {e}") from e
  runs.write_run(out, config, int(state["step"]), merged)
  print(f"merged LoRA of {workdir} (step {int(state['step'])}) into plain weights in {out}")


SUMMARY = "fold LoRA factors into plain weights (GAN and music runs)"
USAGE = "merge --workdir=DIR --out=DIR2"


def define(fv, argv):
  flags.DEFINE_string("workdir", None, "The LoRA-fine-tuned workdir.", flag_values=fv)
  flags.DEFINE_string("out", None, "The plain workdir to write (must hold no checkpoints).",
                      flag_values=fv)


def run(FLAGS, args, argv):
  need(FLAGS, "workdir", "out", command="merge")
  merge_workdir(FLAGS.workdir, FLAGS.out)
