"""artjax launcher: `python run.py --help` lists the commands, `python run.py CMD --help`
a command's flags.

  python run.py train  --config=configs/gan.py:digits --workdir=DIR [--config.train.steps=N ...]
  python run.py sample --workdir=DIR --num=N --out=FILE.npz [--seed=S] [--grid=FILE.png]
  python run.py eval   --workdir=DIR [--num=N] [--seed=S] [--best]
"""

import os
import signal
import sys


def _terminate(signum, frame):
  """SIGTERM outside a training loop (which saves and stops on it): once a run has reported
  its outcome (`done:`), a late SIGTERM (during cleanup and interpreter teardown) keeps that
  outcome's exit status instead of turning a finished run into 143; before, it ends the
  process as SIGTERM does."""
  loop = sys.modules.get("artjax.engine.loop")    # never import here: it may be half-imported
  status = getattr(loop, "FINISHED", {}).get("status")
  sys.stdout.flush()
  if status is None:
    # no run has started (imports, config, data): nothing to save. Exit at once: raising here
    # could land inside an import and be swallowed, or leave modules half-initialised
    print(f"terminated (signal {signum}) before a run started: nothing was saved",
          file=sys.stderr, flush=True)
  sys.stderr.flush()
  os._exit(128 + signum if status is None else loop.EXIT_CODES[status])


if __name__ == "__main__":
  signal.signal(signal.SIGTERM, _terminate)   # before the imports: a SIGTERM there is 143 too
  from artjax import commands
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
