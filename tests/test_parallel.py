"""Data parallelism on 8 (forced host) devices, in a subprocess so the rest of the suite
keeps one device."""

import pytest

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.slow
def test_eight_devices_match_one_and_checkpoints_cross(tmp_path, data_dir):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             ARTJAX_DATA_DIR=data_dir)
  r = subprocess.run([sys.executable, os.path.join(HERE, "multidevice_check.py"), str(tmp_path)],
                     capture_output=True, text=True, env=env, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.loads(r.stdout.strip().splitlines()[-1])
  assert res["params_8_vs_1"] < 1e-4, res
  assert res["resume_8to1_steps"] == 20 and res["resume_1to8_steps"] == 20
  assert res["resume_cross_diff"] < 1e-4, res
  assert res["population_8_vs_1"] < 1e-4, res
  assert res["indivisible_error"] and "not divisible" in res["indivisible_error"]
