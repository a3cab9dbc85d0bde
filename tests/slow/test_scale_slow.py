"""The long (make test-slow) tests of integration/test_scale.py."""

import glob
import json
import os
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AbstractMesh, PartitionSpec as P
from artjax import ConfigError
from artjax.engine import parallel
from artjax.commands.sweep import POPULATION_FIELDS, cells, group_config, groups, parse
from artjax.tasks import build_task
from helpers import music_config, run_cli, small_config


@pytest.mark.slow   # 6 s: make test-slow
def test_profile_writes_a_trace_of_the_chosen_steps(tmp_path):
  wd = str(tmp_path / "run")
  r = run_cli("train", "--config=configs/music.py:default,smoke", f"--workdir={wd}",
              "--config.train.steps=40", "--config.train.profile_steps=21,40")
  assert r.returncode == 0, r.stderr
  assert glob.glob(os.path.join(wd, "profile", "plugins", "profile", "*", "*.xplane.pb"))
  assert "profile of steps 21..40" in r.stdout + r.stderr
  for bad in ("30", "0,5", "5,50", "a,b"):
    r = run_cli("train", "--config=configs/music.py:default,smoke", f"--workdir={tmp_path / bad}",
                "--config.train.steps=40", f"--config.train.profile_steps={bad}")
    assert r.returncode != 0 and "error: train.profile_steps" in r.stderr, (bad, r.stderr)
    assert not os.path.exists(tmp_path / bad)


@pytest.mark.slow   # ~40 s: two trainings and a rerun
def test_sweep_trains_groups_writes_tables_and_resumes(tmp_path):
  wd = str(tmp_path / "sweep")
  args = ("sweep", "--config=configs/gan.py:digits,smoke", f"--workdir={wd}",
          "--sweep=optim.lr=1e-4,4e-4;model.width=32,64", "--config.train.steps=20",
          "--config.train.eval_every=20")
  r = run_cli(*args)
  assert r.returncode == 0, r.stderr
  rows = json.load(open(os.path.join(wd, "sweep.json")))
  assert len(rows) == 4 and len({r["workdir"] for r in rows}) == 2
  assert {r["replica"] for r in rows} == {0, 1}
  assert all(r["status"] == "finished" and "eval/fdd" in r["final"] for r in rows)
  fdd = [r["final"]["eval/fdd"] for r in rows]
  assert len(set(fdd)) == 4                                    # each cell its own model
  assert "| optim.lr | model.width |" in open(os.path.join(wd, "sweep.md")).read()
  r = run_cli(*args)                                           # finished groups are skipped
  assert r.returncode == 0 and "sweep: group" not in r.stdout
  assert [x["final"] for x in json.load(open(os.path.join(wd, "sweep.json")))] == [x["final"] for x in rows]
