"""`run.py export`: a `jax.export` sampler artifact + manifest (runs with jax and numpy only)."""

from __future__ import annotations

from absl import flags

from artjax.commands.options import need

SUMMARY = "a jax.export sampler artifact + manifest that runs with jax and numpy only"
USAGE = ("export --workdir=DIR --out=DIR2 [--platforms=cpu,cuda,tpu] [--best] | "
         "export --workdir=DIR --format=torch --out=G.pth")
FORMATS = ("jax", "torch")


def define(fv, argv):
  d = dict(flag_values=fv)
  flags.DEFINE_string("workdir", None, "The trained (or quantised / pruned) run.", **d)
  flags.DEFINE_string("out", None, "The artifact directory to write (new or empty).", **d)
  flags.DEFINE_list("platforms", ["cpu"], "Platforms of the artifact (cpu,cuda,rocm,tpu).", **d)
  flags.DEFINE_bool("best", False, "Export the best checkpoint instead of the latest.", **d)
  flags.DEFINE_enum("format", "jax", FORMATS, "jax: the jax.export artifact directory; torch: "
                    "the generator as a PyTorch state dict file (models with a PyTorch layout: "
                    "dcgan_torch), read back by torch.load.", **d)


def run(FLAGS, args, argv):
  from artjax import deploy
  need(FLAGS, "workdir", "out", command="export")
  if FLAGS.format == "torch":
    return _torch(FLAGS.workdir, FLAGS.out, FLAGS.best)
  deploy.export_workdir(FLAGS.workdir, FLAGS.out, FLAGS.platforms, best=FLAGS.best)


def _torch(workdir: str, out: str, best: bool) -> int:
  import os
  from artjax import ConfigError
  from artjax.nn import torch_state
  from artjax.tasks import open_run
  if os.path.exists(out):
    raise ConfigError(f"--out: {out!r} exists; choose a new file name")
  task, state = open_run(workdir, best=best)
  weights = task.torch_state_dict(state)   # ConfigError when the model has no PyTorch layout
  tmp = out + ".partial"
  try:
    torch_state.write(tmp, weights)
    os.replace(tmp, out)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  print(f"wrote the generator of {workdir} (step {int(state['step'])}) as a PyTorch state dict "
        f"to {out} ({len(weights)} tensors; torch.load(..., weights_only=True) reads it)")
  return 0
