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
  _model_of_source(c)
  return train_cmd.exit_code(train(c, FLAGS.workdir))


def _model_of_source(c):
  """Fine-tuning keeps the architecture: when the pretrained run's model is another kind than
  the config's (e.g. an imported NVIDIA stylegan2_ada under configs/finetune.py's stylegan2
  recipe), its model block and picture size are taken, and a note says so."""
  import os
  from artjax.engine import workdir as runs
  if not os.path.isfile(os.path.join(c.finetune.init_from, "config.json")):
    return   # the loop says what is missing
  src = runs.load_config(c.finetune.init_from)
  if src.task != c.task or "model" not in src or src.model.get("name") == c.model.get("name"):
    return
  adapter = c.model.get("adapter_dim", 0)
  c.model = src.model
  if "adapter_dim" in c.model:
    c.model.adapter_dim = adapter
  if "resolution" in c.data and "resolution" in src.data:
    c.data.resolution = src.data.resolution
  print(f"finetune: model {src.model.name} as in {c.finetune.init_from} (the config named "
        f"another)")
