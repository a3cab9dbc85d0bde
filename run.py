"""artjax launcher: `python run.py --help` lists the commands, `python run.py CMD --help`
a command's flags.

  python run.py train  --config=configs/gan.py:digits --workdir=DIR [--config.train.steps=N ...]
  python run.py sample --workdir=DIR --num=N --out=FILE.npz [--seed=S] [--grid=FILE.png]
  python run.py eval   --workdir=DIR [--num=N] [--seed=S] [--best]
"""

import os
import signal
import sys

from artjax import commands


def _terminate(signum, frame):
  """SIGTERM outside a training loop (which saves and stops on it): once a run has reported
  its outcome (`done:`), a late SIGTERM (during cleanup and interpreter teardown) keeps that
  outcome's exit status instead of turning a finished run into 143; before, it ends the
  process as SIGTERM does."""
  from artjax.engine import loop
  status = loop.FINISHED.get("status")
  if status is not None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(loop.EXIT_CODES[status])
  raise SystemExit(128 + signum)


if __name__ == "__main__":
  signal.signal(signal.SIGTERM, _terminate)
  code = commands.main(sys.argv)
  signal.signal(signal.SIGTERM, lambda *_: os._exit(code))   # teardown keeps the outcome
  from artjax.engine import loop
  if loop.FINISHED.get("status") is not None:
    # a run reported its outcome with its checkpoint, metrics and summary closed: skip the
    # interpreter's teardown, where XLA's and Orbax's threads could segfault after a SIGTERM
    # (exit 139 instead of the documented 3; issue #47)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  sys.exit(code)
