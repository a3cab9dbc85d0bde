"""`run.py finetune`: adapt a pretrained run to a new style (full, LoRA, adapters, ...)."""

from __future__ import annotations

from absl import flags

from artjax import ConfigError
from artjax.commands import train as train_cmd
from artjax.commands.options import need

SUMMARY = "adapt a pretrained generator or language model to a new style"
USAGE = ("finetune --config=configs/finetune.py:METHOD --init_from=PRETRAINED --workdir=DIR")


def define(fv, argv):
  train_cmd.define(fv, argv)
  flags.DEFINE_string("init_from", None, "The pretrained workdir (else finetune.init_from).",
                      flag_values=fv)


def run(FLAGS, args, argv):
  from artjax.tasks.training import train
  need(FLAGS, "config", "workdir", command="finetune")
  c = FLAGS.config
  if c.finetune.method == "none":
    raise ConfigError("finetune needs a config with finetune.method set (configs/finetune.py:"
                      "full|top|freeze_d|lora|adapter|bitfit, configs/music.py:prefix_minor|lora_minor)")
  if FLAGS.init_from:
    c.finetune.init_from = FLAGS.init_from
  if not c.finetune.init_from:
    raise ConfigError("finetune needs --init_from=PRETRAINED_WORKDIR")
  return train_cmd.exit_code(train(c, FLAGS.workdir))
