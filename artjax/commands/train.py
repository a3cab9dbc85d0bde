"""`run.py train`: train (or resume) any config in a workdir."""

from __future__ import annotations

from absl import flags

from artjax.commands.options import define_config, need
from artjax.engine.loop import EXIT_CODES

SUMMARY = "train (or resume) any config; --config.x=y overrides any field"
USAGE = "train --config=configs/NAME.py[:ARG] --workdir=DIR [--config.FIELD=VALUE ...]"


def define(fv, argv):
  define_config(fv, argv)
  flags.DEFINE_string("workdir", None, "Run directory (checkpoints, logs, samples).",
                      flag_values=fv)


def exit_code(summary) -> int:
  return EXIT_CODES[summary["status"]]


def run(FLAGS, args, argv):
  from artjax.tasks.training import train
  need(FLAGS, "config", "workdir", command="train")
  return exit_code(train(FLAGS.config, FLAGS.workdir))
