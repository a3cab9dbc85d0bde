"""Training a config: build its task, train the runs it needs first (e.g. its dataset's
evaluator, once, cached), then hand it to the engine's loop (`artjax.engine.loop.train`),
which knows no task registry."""

from __future__ import annotations

from artjax.engine import checkpoint, loop, parallel
from artjax.tasks.build import build_task
from artjax.tasks.open import open_run


def train(config, workdir: str, *, on_dispatch=None, quiet: bool = False) -> dict:
  """Trains (or resumes) the task of `config` in `workdir`; returns the final summary (see
  artjax.engine.loop.train)."""
  parallel.initialize_distributed(config)
  task = build_task(config)               # a ConfigError before anything is written
  loop.check_train_config(config)
  for required, wd in task.requirements(bool(config.train.eval_every)):
    ensure_trained(required, wd)
  return loop.train(task, workdir, open_source=open_run, on_dispatch=on_dispatch, quiet=quiet)


def ensure_trained(config, workdir: str) -> None:
  """Trains `config` in `workdir` unless it holds a finished run (its final step)."""
  if checkpoint.latest_step(workdir) != config.train.steps:
    print(f"training {config.task} on {config.data.name} once (cached in {workdir})", flush=True)
    train(config, workdir, quiet=True)


def load_evaluator(task_config):
  """The evaluator classifier of `task_config`'s dataset, trained by the loop on first use."""
  from artjax.tasks import evaluator
  ensure_trained(*evaluator.requirement(task_config))
  return evaluator.Evaluator(task_config)
