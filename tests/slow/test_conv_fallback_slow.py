"""No program artjax compiles hands XLA:CPU a convolution it cannot run fast (issue #43):
every conv task's training dispatch (the loop's `lax.scan`), sampling, projection, inversion,
style transfer and translation compiled with XLA's fallback logging on (tests/conv_fallback_check.py)."""

import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT

MARK = "=== conv-check program: "


def fallbacks_by_program(stderr: str) -> dict:
  """{program: number of 'Falling back to unoptimized convolution' lines logged while it ran}."""
  counts, current = {}, None
  for line in stderr.splitlines():
    if line.startswith(MARK):
      current = line[len(MARK):].strip()
      counts.setdefault(current, 0)
    elif "Falling back to unoptimized convolution" in line and current is not None:
      counts[current] += 1
  return counts


@pytest.mark.slow
def test_no_program_falls_back_to_unoptimised_convolutions(tmp_path):
  r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "conv_fallback_check.py"),
                      str(tmp_path)], capture_output=True, text=True, timeout=1500, cwd=ROOT)
  assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
  done = json.loads(r.stdout.strip().splitlines()[-1])["programs"]
  counts = fallbacks_by_program(r.stderr)
  assert counts["control"] > 0, "XLA's fallback logging was not captured: the check is void"
  assert len(done) >= 14 and set(done) <= set(counts)
  bad = {k: v for k, v in counts.items() if k != "control" and v}
  assert not bad, f"unoptimised convolutions compiled: {bad}"
