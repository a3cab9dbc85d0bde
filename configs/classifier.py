# python run.py train --config=configs/classifier.py:digits --workdir=runs/digits_classifier
"""The evaluator classifier (`run.py eval` trains and caches it in the data dir by itself)."""

from artjax.tasks.evaluator import evaluator_config


def get_config(arg: str = "digits"):
  return evaluator_config(arg or "digits")
