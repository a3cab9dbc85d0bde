"""The long (make test-slow) tests of integration/test_multihost.py."""

import pytest
import os
import socket
import subprocess
import sys
import jax
import numpy as np
from test_multihost import _free_port, _spawn  # noqa: F401


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, data_dir, eight_device_run):
  port = _free_port()
  multi = str(tmp_path / "multi")
  procs = [_spawn(multi, port, i, 2, 4, data_dir, str(tmp_path)) for i in range(2)]
  outs = [p.wait() for p in procs]
  for rc, out, err in outs:
    assert rc == 0, err[-3000:]
  assert "process 0/2 devices 8 local 4 step 40" in outs[0][1]
  assert "process 1/2 devices 8 local 4 step 40" in outs[1][1]
  single = eight_device_run   # one process, 8 devices, the same config (conftest)

  # Only process 0 wrote logs; the checkpoint restores here (one process, one device).
  assert os.path.exists(os.path.join(multi, "metrics.jsonl"))
  assert os.path.exists(os.path.join(multi, "samples", "step_0000040.png"))
  from artjax.tasks import open_run as load_state
  _, a = load_state(multi)
  _, b = load_state(single)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
  # The 2-process periodic checkpoint (step 20), resumed here on one device, ends where the
  # uninterrupted run ends.
  import shutil
  resumed = str(tmp_path / "resumed")
  shutil.copytree(multi, resumed)
  shutil.rmtree(os.path.join(resumed, "checkpoints", "40"))
  from artjax.tasks.training import train
  from helpers import small_config
  c = small_config(steps=40, batch_size=64, ckpt_every=20, sample_every=20, eval_every=0)
  c.mesh.num_devices = 1
  assert train(c, resumed, quiet=True)["steps_this_run"] == 20
  _, r = load_state(resumed)
  for x, y in zip(jax.tree.leaves(r), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
  rows_multi = open(os.path.join(multi, "metrics.jsonl")).read().count("\n")
  assert rows_multi == 2   # log_every=20 over 40 steps, written once (not per process)

  # FSDP across the two processes (weights and optimizer state split 8 ways, 4 per process):
  # the same run, and each device holds about an eighth of the weights.
  fsdp = str(tmp_path / "fsdp")
  port = _free_port()
  procs = [_spawn(fsdp, port, i, 2, 4, data_dir, str(tmp_path), "fsdp=-1") for i in range(2)]
  for rc, out, err in (p.wait() for p in procs):
    assert rc == 0, err[-3000:]
  import json
  summary = json.load(open(os.path.join(fsdp, "summary.json")))
  assert summary["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1}
  single_summary = json.load(open(os.path.join(single, "summary.json")))
  assert summary["param_bytes_per_device"] < 0.2 * single_summary["param_bytes_per_device"]
  _, c = load_state(fsdp)
  for x, y in zip(jax.tree.leaves(c), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
