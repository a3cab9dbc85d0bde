"""Command-line entry points behind run.py: parse, validate, hand off to the library."""

from __future__ import annotations

import sys

from absl import flags, logging as absl_logging

from artjax import ConfigError

COMMANDS = ("train", "finetune", "sample", "eval", "compare", "merge")


def _fail(msg: str) -> None:
  print(f"error: {msg}", file=sys.stderr, flush=True)
  sys.exit(2)


def parse_flags(argv):
  """absl flag parsing with one-line errors (unknown config key, wrong type, ...)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _fail(str(e).splitlines()[0])
  except (KeyError, AttributeError) as e:
    key = (str(e.args[0]) if e.args else str(e)).strip("'\" ")
    culprits = [a.split("=")[0][len("--config."):] for a in argv
                if a.startswith("--config.") and a.split("=")[0].split(".")[-1] == key]
    where = culprits[0] if culprits else key
    _fail(f"unknown config key {where!r} (no such field in the config file)")
  except (TypeError, ValueError) as e:
    _fail(f"bad config: {e}")




def main(argv, FLAGS) -> None:
  args = argv[1:]
  if not args or args[0] not in COMMANDS or (args[0] != "compare" and len(args) != 1):
    _fail(f"usage: run.py {{{'|'.join(COMMANDS)}}} [flags]; got {args}")
  command = args[0]
  absl_logging.set_verbosity(absl_logging.WARNING)
  try:
    if command in ("train", "finetune"):
      if FLAGS.config is None:
        raise ConfigError("train needs --config=configs/NAME.py[:ARG]")
      if not FLAGS.workdir:
        raise ConfigError("train needs --workdir=DIR")
      from artjax.train import train
      if command == "finetune":
        if "finetune" not in FLAGS.config or FLAGS.config.finetune.method == "none":
          raise ConfigError("finetune needs a config with finetune.method set "
                            "(configs/finetune.py:full|top|freeze_d|lora|adapter|bitfit, configs/music.py:prefix_minor|lora_minor)")
        if FLAGS.init_from:
          FLAGS.config.finetune.init_from = FLAGS.init_from
        if not FLAGS.config.finetune.init_from:
          raise ConfigError("finetune needs --init_from=PRETRAINED_WORKDIR")
      train(FLAGS.config, FLAGS.workdir)
    elif command == "sample":
      if not FLAGS.workdir or not FLAGS.out:
        raise ConfigError("sample needs --workdir=DIR and --out=FILE.npz (music: --out=DIR)")
      from artjax.sample import sample_to_file
      sample_to_file(FLAGS.workdir, FLAGS.num, FLAGS.out, seed=FLAGS.seed, grid=FLAGS.grid,
                     replica=FLAGS.replica, prime=FLAGS.prime,
                     overrides={"temperature": FLAGS.temperature, "top_p": FLAGS.top_p,
                                "guidance": FLAGS.guidance, "mode": FLAGS.mode,
                                "key_guidance": FLAGS.key_guidance, "tonic": FLAGS.tonic})
    elif command == "eval":
      if not FLAGS.workdir:
        raise ConfigError("eval needs --workdir=DIR")
      from artjax.evaluation.report import evaluate_workdir
      evaluate_workdir(FLAGS.workdir, FLAGS.num if FLAGS["num"].present else None,
                       seed=FLAGS.seed, best=FLAGS.best, replica=FLAGS.replica)
    elif command == "merge":
      if not FLAGS.workdir or not FLAGS.out:
        raise ConfigError("merge needs --workdir=DIR and --out=DIR2")
      from artjax.finetune import merge_workdir
      merge_workdir(FLAGS.workdir, FLAGS.out)
    elif command == "compare":
      if len(args) < 2:
        raise ConfigError("compare needs one or more workdirs: run.py compare DIR_A DIR_B ...")
      from artjax.evaluation.report import compare
      compare(args[1:])
  except ConfigError as e:
    _fail(str(e))
