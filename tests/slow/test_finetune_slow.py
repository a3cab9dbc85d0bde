"""The long (make test-slow) tests of integration/test_finetune.py."""

import os
import jax
import numpy as np
import pytest
from artjax import ConfigError
from artjax.tasks import open_run as load_state
from artjax.tasks.training import train
from test_finetune_methods_slow import _finetune, ft_config, pretrained  # noqa: F401


@pytest.mark.slow
def test_finetune_moves_target_class_metrics(pretrained, tmp_path, data_dir):
  """Pretrained on digits 0-8, adapted with 50 nines: samples become nines."""
  from helpers import digits_evaluator
  ev = digits_evaluator(data_dir)
  pre_task, pre = load_state(pretrained)
  before = ev.probs(np.asarray(pre_task.sample(pre, 1, 200)["images"])).argmax(1)
  task, st = _finetune("full", pretrained, str(tmp_path / "full"), steps=300,
                       steps_per_dispatch=100, log_every=100)
  after = ev.probs(np.asarray(task.sample(st, 1, 200)["images"])).argmax(1)
  assert np.mean(before == 9) < 0.1
  assert np.mean(after == 9) > 0.6, np.bincount(after, minlength=10)


@pytest.mark.slow
def test_early_stopping_restores_best(pretrained, tmp_path):
  import json
  wd = tmp_path / "es"
  c = ft_config("full", steps=400, eval_every=10, patience=2)
  c.finetune.init_from = pretrained
  s = train(c, str(wd), quiet=True)
  rows = [json.loads(l) for l in open(wd / "metrics.jsonl") if "eval/fdd" in l]
  fdds = {r["step"]: r["eval/fdd"] for r in rows}
  assert "early_stopped_at" in s and s["early_stopped_at"] < 400
  best_step = min(fdds, key=fdds.get)
  assert s["restored_best_step"] == best_step and s["early_stopped_at"] - best_step == 20
  _, final = load_state(str(wd))
  _, best = load_state(str(wd), step=best_step, best=True)
  for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(best), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_population_finetune_keeps_each_replicas_best(pretrained, tmp_path):
  """Seeds of a sweep cell as one vmapped population: init_from loads every replica, each
  replica keeps its own best state, early stopping waits for the last to stop improving."""
  import json
  wd = tmp_path / "pop"
  c = ft_config("lora", steps=300, eval_every=10, patience=2)
  c.train.num_replicas = 2
  c.finetune.init_from = pretrained
  s = train(c, str(wd), quiet=True)
  rows = [json.loads(l) for l in open(wd / "metrics.jsonl") if "eval/fdd/r0" in l]
  best_steps = [min(rows, key=lambda r: r[f"eval/fdd/r{i}"])["step"] for i in range(2)]
  assert "early_stopped_at" in s and s["early_stopped_at"] - max(best_steps) == 20
  assert json.load(open(wd / "best.json"))["replica_steps"] == best_steps
  # replica 1's final state is a single run with its seed stopped at its own best step
  single = ft_config("lora", steps=best_steps[1])
  single.seed = c.seed + 1
  single.finetune.init_from = pretrained
  train(single, str(tmp_path / "one"), quiet=True)
  _, r1 = load_state(str(wd), replica=1)
  _, one = load_state(str(tmp_path / "one"))
  for a, b in zip(jax.tree.leaves(one["g_lora"]), jax.tree.leaves(r1["g_lora"]), strict=True):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)
