"""The long (make test-slow) tests of integration/test_robustness.py."""

import json
import os
import shutil
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from artjax import ConfigError
from artjax.tasks import open_run
from artjax.engine import checkpoint, workdir as runs
from artjax.engine.loop import EXIT_CODES, _multi_step
from artjax.tasks.training import train
from helpers import run_cli, small_config


@pytest.mark.slow
def test_sigterm_saves_and_exits_3(tmp_path):
  """A real SIGTERM to `python run.py train`: checkpoint at the current step, exit 3, resumable."""
  import signal
  import subprocess
  import sys
  import time
  from helpers import ROOT
  wd = tmp_path / "term"
  p = subprocess.Popen([sys.executable, os.path.join(ROOT, "run.py"), "train",
                        "--config=configs/gan.py:digits,smoke", f"--workdir={wd}",
                        "--config.train.steps=100000", "--config.train.ckpt_every=1000"],
                       cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  t = time.time()
  while not os.path.exists(wd / "metrics.jsonl") or os.path.getsize(wd / "metrics.jsonl") == 0:
    assert time.time() - t < 120 and p.poll() is None
    time.sleep(0.2)
  p.send_signal(signal.SIGTERM)
  out = p.communicate(timeout=120)[0]
  assert p.returncode == EXIT_CODES["interrupted"] == 3, out[-2000:]
  assert "interrupted: checkpoint saved at step" in out
  step = checkpoint.latest_step(str(wd))
  assert step and json.load(open(wd / "summary.json"))["status"] == "interrupted"
  assert not os.path.exists(wd / runs.LOCK)


@pytest.mark.slow
def test_sigterm_right_after_done_keeps_exit_0(tmp_path):
  import signal as _signal
  import subprocess as _sp
  import sys as _sys
  from helpers import ROOT as _ROOT
  proc = _sp.Popen([_sys.executable, "run.py", "train", "--config=configs/gan.py:digits,smoke",
                    f"--workdir={tmp_path / 'run'}"], cwd=_ROOT, stdout=_sp.PIPE, stderr=_sp.DEVNULL,
                   text=True)
  for line in proc.stdout:
    if line.startswith("done:"):
      proc.send_signal(_signal.SIGTERM)     # the run is finished; teardown is under way
      break
  proc.stdout.read()
  assert proc.wait(timeout=120) == 0
