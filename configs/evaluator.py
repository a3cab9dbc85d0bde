# The evaluator classifier of a dataset (features and class probabilities for FDD, IS,
# precision/recall, ...). Trained once per dataset on first use and cached in the data dir:
#   python run.py train --config=configs/evaluator.py:digits --workdir=DIR   (by hand, if wanted)
"""Evaluator classifier configs (ARG: the dataset name)."""

from configs import common


def get_config(arg: str = "digits"):
  dataset = (arg or "digits").split(",")[0]
  c = common.base("classifier", {"name": dataset, "shift": 1})
  c.model = common.ConfigDict({"width": 256, "depth": 2, "dropout": 0.1})
  c.optim = common.optim(name="adamw", lr=1e-3, weight_decay=1e-4, schedule="cosine",
                         warmup_steps=100, clip_norm=1.0)
  c.train.update(steps=2000 if dataset == "digits" else 6000, batch_size=128,
                 steps_per_dispatch=100, log_every=100, ckpt_every=0, keep=1)
  c.mesh.num_devices = 1
  # train_on: the dataset the classifier learns, whose features then judge the task's own
  # ("" = the task's). Segments moved to C (chorale_rolls16c) borrow the all-key evaluator:
  # the mode of a segment in C is nearly given away (a classifier trained on them is right on
  # 0.994), so its features hold little but the mode and every FDD floor collapses to 0.
  c.train_on = "chorale_rolls16" if dataset == "chorale_rolls16c" else ""
  return c
