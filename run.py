"""artjax launcher.

  python run.py train  --config=configs/gan.py:digits --workdir=DIR [--config.train.steps=N ...]
  python run.py sample --workdir=DIR --num=N --out=FILE.npz [--seed=S] [--grid=FILE.png]
  python run.py eval   --workdir=DIR [--num=N] [--seed=S] [--best]
  python run.py compare DIR_A DIR_B ...
  python run.py finetune --config=configs/finetune.py:lora --init_from=PRETRAINED --workdir=DIR
  python run.py merge  --workdir=DIR --out=DIR2
"""

from absl import app, flags
from ml_collections import config_flags

from artjax import cli

config_flags.DEFINE_config_file("config", None, "Config file: configs/NAME.py[:ARG].",
                                 lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory (checkpoints, logs, samples).")
flags.DEFINE_integer("num", 100, "sample: number of samples.")
flags.DEFINE_string("out", None, "sample: output .npz file (music: a directory of MIDI/WAV/PNG); "
                    "merge: output workdir.")
flags.DEFINE_string("prime", None, "sample (music): a MIDI file whose frames open every sample.")
flags.DEFINE_float("temperature", None, "sample (music): override the config's temperature.")
flags.DEFINE_float("top_p", None, "sample (music): override the config's nucleus top-p.")
flags.DEFINE_float("guidance", None, "sample (music): classifier-free guidance scale for the mode token.")
flags.DEFINE_string("mode", None, "sample (music): alternate | major | minor (the requested mode).")
flags.DEFINE_float("key_guidance", None, "sample (music): key-profile steering weight towards --mode.")
flags.DEFINE_integer("tonic", None, "sample (music): tonic pitch class 0-11 (0 = C) for key steering.")
flags.DEFINE_integer("seed", 0, "sample: random seed.")
flags.DEFINE_string("grid", None, "sample: optional PNG grid of the samples.")
flags.DEFINE_integer("replica", None, "sample/eval: which replica of a population.")
flags.DEFINE_string("init_from", None, "finetune: the pretrained workdir.")
flags.DEFINE_bool("best", False, "eval: use the best checkpoint (by validation FDD).")

if __name__ == "__main__":
  app.run(lambda argv: cli.main(argv, flags.FLAGS), flags_parser=cli.parse_flags)
