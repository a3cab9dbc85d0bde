"""The long (make test-slow) tests of integration/test_robustness.py."""

import json
import os
import re
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
  # the output goes to a file, not a pipe nobody reads while waiting: a progress bar filling
  # the pipe's 64 KB would block the run before its first metrics (a deadlock seen under load)
  log = open(tmp_path / "out.txt", "w+")
  p = subprocess.Popen([sys.executable, os.path.join(ROOT, "run.py"), "train",
                        "--config=configs/gan.py:digits,smoke", f"--workdir={wd}",
                        "--config.train.steps=100000", "--config.train.ckpt_every=1000"],
                       cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
  t = time.time()
  try:
    while not os.path.exists(wd / "metrics.jsonl") or os.path.getsize(wd / "metrics.jsonl") == 0:
      assert time.time() - t < 300 and p.poll() is None
      time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=300)
  finally:
    if p.poll() is None:
      p.kill()                # never leave a run behind
  log.seek(0)
  out = log.read()
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


def _train_and_signal(wd, marker, delay, steps=400):
  """Starts `run.py train` (digits smoke, a checkpoint every dispatch), sends SIGTERM `delay`
  seconds after the first output line that starts with `marker` (None: after the start), and
  returns (exit code, output)."""
  import signal
  import subprocess
  import sys
  import threading
  import time
  from helpers import ROOT
  p = subprocess.Popen([sys.executable, "-u", os.path.join(ROOT, "run.py"), "train",
                        "--config=configs/gan.py:digits,smoke", f"--workdir={wd}",
                        f"--config.train.steps={steps}", "--config.train.ckpt_every=20"],
                       cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  lines, seen = [], threading.Event()

  def read():
    for line in p.stdout:
      lines.append(line)
      if marker is not None and line.lstrip("\r").startswith(marker):
        seen.set()
  reader = threading.Thread(target=read, daemon=True)
  reader.start()
  if marker is None:
    seen.set()
  assert seen.wait(180), "".join(lines)[-2000:]
  time.sleep(delay)
  if p.poll() is None:
    p.send_signal(signal.SIGTERM)
  code = p.wait(timeout=180)
  reader.join(30)
  return code, "".join(lines)


@pytest.mark.slow
def test_sigterm_at_many_points_keeps_the_documented_code(tmp_path):
  """Issue #47 item 13: SIGTERM while Python and JAX start (143: no run yet, nothing to save),
  as the run opens, during the compile, mid-dispatch and mid-save (3: a checkpoint at the
  current step) and after `done:` (0). Never a crash code; every workdir resumes to the end."""
  points = [(None, 0.3, 143), ("artjax:", 0.0, 3), ("artjax:", 0.4, 3), ("artjax:", 1.2, 3),
            ("compiled", 0.0, 3), ("compiled", 0.15, 3), ("compiled", 0.5, 3),
            ("done:", 0.0, 0)]
  for i, (marker, delay, want) in enumerate(points):
    wd = tmp_path / f"p{i}"
    steps = 40 if marker == "done:" else 4000
    code, out = _train_and_signal(wd, marker, delay, steps)
    where = f"SIGTERM {delay}s after {marker or 'the start'}"
    assert code == want, f"{where}: exit {code}\n{out[-1500:]}"
    assert not os.path.exists(wd / runs.LOCK), where
    if want == 3:
      assert json.load(open(wd / "summary.json"))["status"] == "interrupted", where
      saved = re.search(r"interrupted: checkpoint saved at step (\d+)", out)
      if saved:
        assert checkpoint.latest_step(str(wd)) == int(saved.group(1)), where
      else:
        assert "interrupted: stopped before the first step" in out, f"{where}\n{out[-1500:]}"
        assert checkpoint.latest_step(str(wd)) is None, where
    if want == 143:
      assert not os.path.exists(wd / "summary.json"), where
  # an interrupted workdir resumes where it stopped and finishes
  code, out = run_cli_resume(tmp_path / "p5")
  assert code == 0 and "resuming from step" in out, out[-1500:]


def run_cli_resume(wd):
  import subprocess
  import sys
  from helpers import ROOT
  p = subprocess.run([sys.executable, os.path.join(ROOT, "run.py"), "train",
                      "--config=configs/gan.py:digits,smoke", f"--workdir={wd}",
                      "--config.train.steps=4000", "--config.train.ckpt_every=20"],
                     cwd=ROOT, capture_output=True, text=True, timeout=600)
  return p.returncode, p.stdout + p.stderr
