"""benchmarks.accelerator_check runs end to end (small sizes on CPU) and writes one JSON with
every command's records, so a session lent a GPU spends its minutes measuring."""

import json
import os
import re
import subprocess
import sys

import pytest

from helpers import ROOT


@pytest.mark.slow
def test_accelerator_check_writes_one_json_with_every_benchmark():
  r = subprocess.run([sys.executable, "-m", "benchmarks.accelerator_check", "--size=cpu",
                      "--budget=900"], capture_output=True, text=True, timeout=1000, cwd=ROOT)
  assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
  path = re.findall(r"^wrote (\S+accelerator_check-\S+\.json)$", r.stdout, re.M)[-1]
  try:
    out = json.load(open(path))
    assert out["ok"] and out["devices"] and len(out["runs"]) == 2
    conv, music = out["runs"]
    rec = conv["result"]["records"][0]
    assert rec["model"] == "dcgan32" and rec["images_per_s"]["artjax"] > 0
    assert rec["flops_per_step"] > 0
    assert "music_throughput" in music["result_file"]
  finally:
    for run in json.load(open(path))["runs"]:
      if "result_file" in run:
        os.remove(os.path.join(ROOT, run["result_file"]))
    os.remove(path)
