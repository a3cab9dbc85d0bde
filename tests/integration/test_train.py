"""The one training loop on real digits: determinism, exact resume, real improvement."""


import json
import os

import jax
import numpy as np
import pytest

from artjax.tasks.training import train
from helpers import small_config


def _leaves(workdir):
  from artjax.tasks import open_run as load_state
  _, state = load_state(workdir)
  return [np.asarray(x) for x in jax.tree.leaves(state)]


@pytest.mark.slow   # 4 s: make test-slow
def test_different_seed_differs(tmp_path):
  c = small_config(steps=20)
  train(c, str(tmp_path / "a"), quiet=True)
  c.seed = 1
  train(c, str(tmp_path / "b"), quiet=True)
  from artjax.tasks import open_run
  (_, a), (_, b) = open_run(str(tmp_path / "a")), open_run(str(tmp_path / "b"))
  # The weights (not the RNG key data, which differs for any two seeds) differ, every one.
  for key in ("g", "d"):
    pa, pb = jax.tree_util.tree_flatten_with_path(a[key])[0], jax.tree_util.tree_flatten_with_path(b[key])[0]
    assert [p for p, _ in pa] == [p for p, _ in pb]
    kernels = [(p, x, y) for (p, x), (_, y) in zip(pa, pb) if "kernel" in jax.tree_util.keystr(p)]
    assert kernels and all(not np.array_equal(x, y) for _, x, y in kernels)


def test_same_seed_same_result_outputs_and_bit_identical_resume(tmp_path):
  """One config trained straight through, again (determinism), and interrupted + resumed."""
  c = small_config(steps=100, ckpt_every=40, sample_every=20)
  c.optim.update(schedule="cosine", warmup_steps=10, weight_decay=1e-3)  # step-dependent state
  full, again, broken = str(tmp_path / "full"), str(tmp_path / "again"), str(tmp_path / "broken")
  train(c, full, quiet=True)
  train(c, again, quiet=True)
  for x, y in zip(_leaves(full), _leaves(again), strict=True):
    np.testing.assert_array_equal(x, y)
  for name in ("config.json", "metrics.jsonl", "summary.json"):
    assert os.path.exists(os.path.join(full, name))
  assert os.path.exists(os.path.join(full, "samples", "step_0000100.png"))
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(full, "tb")))
  rows = [json.loads(l) for l in open(os.path.join(full, "metrics.jsonl"))]
  assert [r["step"] for r in rows] == [20, 40, 60, 80, 100] and all(np.isfinite(r["d_loss"]) for r in rows)
  assert json.load(open(os.path.join(full, "config.json")))["train"]["steps"] == 100

  def crash(step, metrics):
    if step >= 60:
      raise KeyboardInterrupt   # like Ctrl-C / preemption between dispatches
  s = train(c, broken, quiet=True, on_dispatch=crash)
  assert s["interrupted"] and s["step"] < 100
  s2 = train(c, broken, quiet=True)                  # rerun on the same workdir resumes
  assert s2["step"] == 100 and s2["steps_this_run"] == 100 - s["step"]
  for x, y in zip(_leaves(full), _leaves(broken), strict=True):
    np.testing.assert_array_equal(x, y)
