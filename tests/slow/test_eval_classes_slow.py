"""`run.py eval` of a run trained on some classes judges it against those classes only (the
integration proof; the rule itself: tests/unit/test_data.py)."""

import os

import numpy as np
import pytest

from helpers import run_cli

pytestmark = pytest.mark.slow


def test_eval_judges_a_run_on_its_own_classes(trained_workdir, tmp_path, data_dir):
  """A run trained on some classes (data.classes) is evaluated against those classes only:
  floor, train and held-out splits of the judged dataset all restricted."""
  import json
  import shutil
  from artjax.image import data as image_data
  wd = str(tmp_path / "one_class")
  shutil.copytree(trained_workdir, wd)
  with open(os.path.join(wd, "config.json")) as f:
    cfg = json.load(f)
  cfg["data"]["classes"] = [3]
  with open(os.path.join(wd, "config.json"), "w") as f:
    json.dump(cfg, f)
  r = run_cli("eval", f"--workdir={wd}", "--num=24")
  assert r.returncode == 0, r.stderr
  with open(os.path.join(wd, "eval.json")) as f:
    result = json.load(f)
  from helpers import small_config
  full = image_data.load(small_config().data)
  threes = int(np.sum(full.labels("validation") == 3))
  assert result["floor"]["n"] == threes < len(full.labels("validation"))
  shares = result["floor"]["class_shares"]
  assert shares[3] > 0.8 and result["floor"]["classes_present"] <= 2
