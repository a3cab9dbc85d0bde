"""artjax launcher.

  python run.py train  --config=configs/gan.py:digits --workdir=DIR [--config.train.steps=N ...]
  python run.py sample --workdir=DIR --num=N --out=FILE.npz [--seed=S] [--grid=FILE.png]
  python run.py eval   --workdir=DIR [--num=N] [--seed=S] [--best]
  python run.py compare DIR_A DIR_B ...
  python run.py finetune --config=configs/finetune.py:lora --init_from=PRETRAINED --workdir=DIR
  python run.py merge  --workdir=DIR --out=DIR2
"""

import sys

from artjax import cli

if __name__ == "__main__":
  sys.exit(cli.main(sys.argv))
