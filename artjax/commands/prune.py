"""`run.py prune`: global magnitude pruning of a run's weights, with optional recovery."""

from __future__ import annotations

from absl import flags

from artjax.commands.options import need

SUMMARY = "global magnitude pruning with optional recovery training (mask fixed)"
USAGE = "prune --workdir=DIR --out=DIR2 [--sparsity=0.5] [--finetune_steps=N]"


def define(fv, argv):
  d = dict(flag_values=fv)
  flags.DEFINE_string("workdir", None, "The trained run.", **d)
  flags.DEFINE_string("out", None, "The pruned workdir to write (new or empty).", **d)
  flags.DEFINE_float("sparsity", 0.5, "Fraction of kernel weights zeroed (global magnitude).", **d)
  flags.DEFINE_integer("finetune_steps", 0, "Recovery training steps with the mask fixed.", **d)


def run(FLAGS, args, argv):
  from artjax import deploy
  need(FLAGS, "workdir", "out", command="prune")
  deploy.prune_workdir(FLAGS.workdir, FLAGS.out, FLAGS.sparsity, FLAGS.finetune_steps)
