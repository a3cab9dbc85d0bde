"""artjax launcher: `python run.py --help` lists the commands, `python run.py CMD --help`
a command's flags.

  python run.py train  --config=configs/gan.py:digits --workdir=DIR [--config.train.steps=N ...]
  python run.py sample --workdir=DIR --num=N --out=FILE.npz [--seed=S] [--grid=FILE.png]
  python run.py eval   --workdir=DIR [--num=N] [--seed=S] [--best]
"""

import sys

from artjax import commands

if __name__ == "__main__":
  sys.exit(commands.main(sys.argv))
