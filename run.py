"""artjax launcher: `python run.py --help` lists the commands, `python run.py CMD --help`
a command's flags.

  python run.py train  --config=configs/gan.py:digits --workdir=DIR [--config.train.steps=N ...]
  python run.py sample --workdir=DIR --num=N --out=FILE.npz [--seed=S] [--grid=FILE.png]
  python run.py eval   --workdir=DIR [--num=N] [--seed=S] [--best]
"""

import os
import signal
import sys


class _Terminate:
  """SIGTERM outside a training loop (which saves and stops on it). Before any run has
  reported its outcome (imports, config, data) it ends the process as SIGTERM does; once a run
  has (`artjax.engine.loop` calls `keep_outcome` as its loop gives SIGTERM back), a late
  SIGTERM during cleanup and interpreter teardown keeps that outcome's exit status instead of
  turning a finished run into 143. The state lives here, in the process's entry point, not
  in a library module."""

  def __init__(self):
    self.exit_code = None

  def keep_outcome(self, exit_code) -> None:
    self.exit_code = exit_code

  def __call__(self, signum, frame):
    sys.stdout.flush()
    if self.exit_code is None:
      # nothing to save. Exit at once: raising here could land inside an import and be
      # swallowed, or leave modules half-initialised
      print(f"terminated (signal {signum}) before a run started: nothing was saved",
            file=sys.stderr, flush=True)
    sys.stderr.flush()
    os._exit(128 + signum if self.exit_code is None else self.exit_code)


if __name__ == "__main__":
  terminate = _Terminate()
  signal.signal(signal.SIGTERM, terminate)   # before the imports: a SIGTERM there is 143 too
  from artjax import commands
  code = commands.main(sys.argv)
  signal.signal(signal.SIGTERM, lambda *_: os._exit(code))   # teardown keeps the outcome
  if terminate.exit_code is not None:
    # a run reported its outcome with its checkpoint, metrics and summary closed: skip the
    # interpreter's teardown, where XLA's and Orbax's threads could segfault after a SIGTERM
    # (exit 139 instead of the documented 3; issue #47)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  sys.exit(code)
