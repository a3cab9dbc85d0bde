"""The long (make test-slow) tests of integration/test_deploy.py."""

import json
import os
import subprocess
import sys
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import run_cli
from artjax.engine import compress, workdir as runs
from artjax.tasks import open_run, open_stored
from test_deploy import pruned_run  # noqa: F401


@pytest.mark.slow   # a recovery run compiles a training step (about 15 s)
def test_prune_recovery_keeps_mask_and_trains(pruned_run, trained_workdir, tmp_path):
  p1 = tmp_path / "p1"
  r = run_cli("prune", f"--workdir={trained_workdir}", f"--out={p1}", "--sparsity=0.6",
              "--finetune_steps=20")
  assert r.returncode == 0, r.stderr
  _, before = open_run(str(pruned_run))
  _, after = open_run(str(p1))
  assert int(after["step"]) == 20
  for key in ("ema", "g"):
    for b, a in zip(jax.tree.leaves(before[key]), jax.tree.leaves(after[key]), strict=True):
      b, a = np.asarray(b), np.asarray(a)
      if b.ndim >= 2:
        assert np.all(a[b == 0] == 0)                 # the pruned weights stay exactly zero
  changed = [np.any(np.asarray(a) != np.asarray(b)) for a, b in
             zip(jax.tree.leaves(after["g"]), jax.tree.leaves(before["g"]), strict=True)]
  assert all(changed)                                  # the kept ones trained
