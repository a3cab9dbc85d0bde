"""`run.py quantize`: a workdir of int8 / int4 per-channel (or bf16) sampling weights."""

from __future__ import annotations

from absl import flags

from artjax.commands.options import need

SUMMARY = "int8/int4 per-channel (or bf16) weights of a run's sampling model"
USAGE = "quantize --workdir=DIR --out=DIR2 [--bits=8|4|16]"


def define(fv, argv):
  d = dict(flag_values=fv)
  flags.DEFINE_string("workdir", None, "The trained run.", **d)
  flags.DEFINE_string("out", None, "The quantised workdir to write (new or empty).", **d)
  flags.DEFINE_integer("bits", 8, "Weight bits, 8 or 4 (16 = bf16 storage).", **d)


def run(FLAGS, args, argv):
  from artjax import deploy
  need(FLAGS, "workdir", "out", command="quantize")
  deploy.quantize_workdir(FLAGS.workdir, FLAGS.out, FLAGS.bits)
