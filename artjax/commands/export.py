"""`run.py export`: a `jax.export` sampler artifact + manifest (runs with jax and numpy only)."""

from __future__ import annotations

from absl import flags

from artjax.commands.options import need

SUMMARY = "a jax.export sampler artifact + manifest that runs with jax and numpy only"
USAGE = "export --workdir=DIR --out=DIR2 [--platforms=cpu,cuda,tpu] [--best]"


def define(fv, argv):
  d = dict(flag_values=fv)
  flags.DEFINE_string("workdir", None, "The trained (or quantised / pruned) run.", **d)
  flags.DEFINE_string("out", None, "The artifact directory to write (new or empty).", **d)
  flags.DEFINE_list("platforms", ["cpu"], "Platforms of the artifact (cpu,cuda,rocm,tpu).", **d)
  flags.DEFINE_bool("best", False, "Export the best checkpoint instead of the latest.", **d)


def run(FLAGS, args, argv):
  from artjax import deploy
  need(FLAGS, "workdir", "out", command="export")
  deploy.export_workdir(FLAGS.workdir, FLAGS.out, FLAGS.platforms, best=FLAGS.best)
