"""The long (make test-slow) tests of integration/test_resume.py."""

import json
import os
import signal
import subprocess
import sys
import time
import jax
import numpy as np
import pytest
from artjax.engine import checkpoint
from artjax.tasks import open_run
from artjax.tasks.training import train
from helpers import ROOT, music_config, small_config
from test_resume_crash_slow import _train_process, assert_same_state, crash_and_resume  # noqa: F401


@pytest.mark.slow   # ~30 s: three trainings with evaluations
def test_best_checkpoint_and_early_stopping_state_survive_a_crash(tmp_path):
  c = small_config(steps=200, ckpt_every=40, eval_every=20, patience=2)
  full, broken, summary = crash_and_resume(c, tmp_path, 40)
  assert_same_state(full, broken)
  assert_same_state(full, broken, best=True)
  a, b = (json.load(open(os.path.join(w, "best.json"))) for w in (full, broken))
  assert a == b
  s_full = json.load(open(os.path.join(full, "summary.json")))
  assert summary.get("early_stopped_at") == s_full.get("early_stopped_at")
  assert summary["best"] == s_full["best"]


@pytest.mark.slow   # ~20 s
def test_population_resumes_exactly(tmp_path):
  c = small_config(steps=80, ckpt_every=40, eval_every=40)
  c.train.num_replicas = 2
  c.population.lr = (1e-4, 4e-4)
  full, broken, _ = crash_and_resume(c, tmp_path, 60)
  assert_same_state(full, broken, replicas=2)
  assert json.load(open(os.path.join(full, "best.json"))) == json.load(open(os.path.join(broken, "best.json")))


@pytest.mark.slow   # ~20 s
def test_music_resumes_exactly(tmp_path):
  c = music_config(steps=60, ckpt_every=20, steps_per_dispatch=20, log_every=20)
  full, broken, _ = crash_and_resume(c, tmp_path, 40)
  assert_same_state(full, broken)


@pytest.mark.slow   # ~60 s: three processes
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_process_resumes_to_the_uninterrupted_result(tmp_path, sig):
  """A real `run.py train` killed (SIGKILL: no chance to save; SIGTERM: saves and exits 3)
  after its first periodic checkpoint; rerunning the same command finishes where an
  uninterrupted run finishes."""
  steps = 3000
  wd = tmp_path / "killed"
  p = _train_process(wd, steps)
  t = time.time()
  while checkpoint.latest_step(str(wd)) is None:
    assert time.time() - t < 180 and p.poll() is None, p.output()[-2000:]
    time.sleep(0.1)
  p.send_signal(sig)
  out = p.communicate(timeout=120)[0]
  assert p.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 3), out[-2000:]
  stopped = checkpoint.latest_step(str(wd))
  assert stopped < steps
  p = _train_process(wd, steps)
  out = p.communicate(timeout=600)[0]
  assert p.returncode == 0, out[-2000:]
  assert f"resuming from step {stopped}" in out
  ref = tmp_path / "uninterrupted"
  p = _train_process(ref, steps)
  assert p.communicate(timeout=600)[0] and p.returncode == 0
  assert_same_state(str(ref), str(wd))
