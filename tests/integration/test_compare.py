"""`run.py compare`: evaluated runs side by side (table from their eval.json) and, with
--grid, one row of samples per run in one PNG."""

import json
import os
import shutil

import numpy as np
from PIL import Image

from helpers import run_cli


def _evaluated(src, dst, fdd):
  shutil.copytree(src, dst)
  with open(os.path.join(dst, "eval.json"), "w") as f:
    json.dump({"step": 200, "samples": {"fdd": fdd, "precision": 0.5},
               "floor": {"fdd": 2.0, "precision": 0.7}}, f)
  return str(dst)


def test_compare_tables_runs_and_draws_a_row_per_run(trained_workdir, tmp_path):
  a = _evaluated(trained_workdir, tmp_path / "a", 8.0)
  b = _evaluated(trained_workdir, tmp_path / "b", 4.0)
  grid = tmp_path / "rows.png"
  r = run_cli("compare", a, b, f"--grid={grid}", "--num=5", "--seed=3")
  assert r.returncode == 0, r.stderr
  assert "| a | 200 |" in r.stdout and "| 4.00 |" in r.stdout and "| 2.00 |" in r.stdout
  rows = np.asarray(Image.open(grid))
  s = run_cli("sample", f"--workdir={a}", "--num=5", "--seed=3", f"--out={tmp_path / 's.npz'}")
  assert s.returncode == 0, s.stderr
  first = np.load(tmp_path / "s.npz")["images"]
  # one row per run, each the run's own `sample --seed=3` pictures
  from artjax.engine.writers import image_grid
  want = image_grid(np.concatenate([first, first]), ncol=5, scale=max(1, 64 // first.shape[1]))
  assert np.array_equal(rows, np.asarray(want).reshape(rows.shape)) and first.std() > 0
  r = run_cli("compare", a, str(tmp_path / "missing"))
  assert r.returncode != 0 and "no eval.json" in r.stderr
  r = run_cli("compare", a, f"--grid={grid}", "--num=99")
  assert r.returncode != 0 and "--num" in r.stderr
