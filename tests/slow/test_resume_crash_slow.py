"""Resuming ends exactly where an uninterrupted run ends: after a hard crash (no save on the
way out: the newest periodic checkpoint), after a real SIGKILL and SIGTERM of `run.py train`,
with best-checkpoint and early-stopping state, for a population and for the music task."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from artjax.engine import checkpoint
from artjax.tasks import open_run
from artjax.tasks.training import train
from helpers import ROOT, small_config


def _flat(workdir, **kw):
  flat = jax.tree_util.tree_flatten_with_path(open_run(workdir, **kw)[1])[0]
  return {jax.tree_util.keystr(p): np.asarray(x) for p, x in flat}


def assert_same_state(a, b, replicas=0, **kw):
  for r in range(replicas) if replicas else [None]:
    x, y = _flat(a, replica=r, **kw), _flat(b, replica=r, **kw)
    assert x.keys() == y.keys(), sorted(set(x) ^ set(y))
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=f"replica {r}: {k}")


def _crash_at(step):
  def on_dispatch(s, metrics):
    if s >= step:
      raise RuntimeError("simulated crash: nothing is saved on the way out")
  return on_dispatch


def crash_and_resume(config, tmp_path, crash_step):
  """(uninterrupted workdir, crashed-then-resumed workdir, the resumed run's summary)."""
  full, broken = str(tmp_path / "full"), str(tmp_path / "broken")
  s_full = train(config, full, quiet=True)
  with pytest.raises(RuntimeError, match="simulated crash"):
    train(config, broken, quiet=True, on_dispatch=_crash_at(crash_step))
  last = checkpoint.latest_step(broken)
  assert last is not None and last < config.train.steps
  summary = train(config, broken, quiet=True)
  assert summary["steps_this_run"] == summary["step"] - last      # resumed from `last`
  assert summary["step"] == s_full["step"] and summary["status"] == s_full["status"]
  return full, broken, summary


def test_hard_crash_resumes_from_the_periodic_checkpoint(tmp_path):
  c = small_config(steps=100, ckpt_every=40)
  c.optim.update(schedule="cosine", warmup_steps=10)
  full, broken, _ = crash_and_resume(c, tmp_path, 60)
  assert_same_state(full, broken)


class _TrainProcess(subprocess.Popen):
  """`run.py train` in a child process whose output goes to a file, never to a pipe nobody
  drains while the test waits (a full pipe would block the run: a deadlock seen under load);
  `communicate` gives the output as a pipe would."""

  def __init__(self, workdir, steps):
    import tempfile
    self.log = tempfile.TemporaryFile("w+")
    super().__init__(
        [sys.executable, os.path.join(ROOT, "run.py"), "train", "--config=configs/gan.py:digits,smoke",
         f"--workdir={workdir}", f"--config.train.steps={steps}", "--config.train.ckpt_every=100",
         "--config.train.steps_per_dispatch=20", "--config.train.log_every=20"],
        cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, text=True)

  def output(self) -> str:
    self.log.seek(0)
    return self.log.read()

  def communicate(self, input=None, timeout=None):
    try:
      self.wait(timeout)
    except subprocess.TimeoutExpired:
      self.kill()             # never leave a run behind
      raise
    return self.output(), None


def _train_process(workdir, steps):
  return _TrainProcess(workdir, steps)
