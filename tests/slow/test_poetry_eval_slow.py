"""`run.py eval` of a poetry run: the 平水韻 measure beside held-out poems (moved from
tests/integration/test_poetry.py: an eval of every form, about 12 s)."""

import json
import os

import pytest

from helpers import run_cli

pytestmark = pytest.mark.slow


def test_eval_reports_the_pingshui_measure_beside_held_out_poems(poetry_workdir):
  r = run_cli("eval", f"--workdir={poetry_workdir}", "--num=4")
  assert r.returncode == 0, r.stderr
  result = json.load(open(os.path.join(poetry_workdir, "eval.json"), encoding="utf-8"))
  for form, f in result["forms"].items():
    for who in ("samples", "held_out", "strict"):
      assert set(f["pingshui"][who]) == {"n", "rhyme", "tones", "regulated", "unknown_chars"}
    assert f["pingshui"]["samples"]["n"] == 4       # constrained decoding: every sample has the form
    assert f["pingshui"]["strict"]["regulated"] == 1.0    # strict decoding: every sample passes
  assert "平水韻" in r.stdout
