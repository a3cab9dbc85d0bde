"""The long (make test-slow) tests of integration/test_train.py."""

import pytest
import json
import os
import jax
import numpy as np
from artjax.tasks.training import train
from helpers import small_config


@pytest.mark.slow
def test_training_improves_sample_quality(tmp_path, data_dir):
  """A short run on the real digits: FDD to the training set falls, samples match their labels."""
  from helpers import digits_evaluator
  from artjax.evaluation.images import image_metrics
  from artjax.tasks import open_run as load_state
  ev = digits_evaluator(data_dir)
  c = small_config(steps=1500, steps_per_dispatch=100, log_every=100, eval_every=500)
  c.model.width = 256
  wd = str(tmp_path / "run")
  scores = []
  for steps in (100, 1500):
    c.train.steps = steps
    train(c, wd, quiet=True)
    task, state = load_state(wd)
    s = jax.device_get(jax.jit(task.sample, static_argnums=2)(state, 3, 269))
    scores.append(image_metrics(ev, s["images"], s["labels"]))
  early, late = scores
  assert late["fdd"] < 0.6 * early["fdd"], (early["fdd"], late["fdd"])
  assert late["label_accuracy"] > 0.9 and late["classes_present"] == 10
  assert late["nn_ratio"] > 0.8   # not copies of the training images
  # Periodic evaluation logged FDD and kept the best checkpoint beside the latest.
  rows = [json.loads(l) for l in open(os.path.join(wd, "metrics.jsonl"))]
  fdds = {r["step"]: r["eval/fdd"] for r in rows if "eval/fdd" in r}
  assert sorted(fdds) == [100, 500, 1000, 1500]
  best = json.load(open(os.path.join(wd, "best.json")))
  assert best["value"] == min(fdds.values()) and best["step"] == min(fdds, key=fdds.get)
  task, state = load_state(wd, step=best["step"], best=True)
  assert int(state["step"]) == best["step"]
