"""A run directory (workdir): the one API every command reads runs through.

    workdir/config.json           the run's full config
    workdir/checkpoints/STEP/     Orbax checkpoints of the whole state (the last train.keep)
    workdir/best/checkpoints/S/   the best state by the task's eval_key (train.eval_every)
    workdir/best.json             {"step", "metric", "value" (, per-member "values", "steps")}
    workdir/metrics.jsonl, summary.json, samples/, tb/

`open_run(workdir)` gives (task, state) for sampling, evaluation, merging and (later)
export and serving; the training loop uses the same pieces with the mesh's sharding.
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections

from artjax import ConfigError, checkpoint
from artjax.tasks import build_task

CONFIG = "config.json"
BEST = "best"
BEST_JSON = "best.json"


def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, CONFIG)
  if not os.path.exists(path):
    raise ConfigError(f"no config.json in workdir {workdir!r}: train a model there first")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def write_config(workdir: str, config) -> None:
  with open(os.path.join(workdir, CONFIG), "w") as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))


def latest_step(workdir: str) -> int | None:
  return checkpoint.latest_step(workdir)


def best_info(workdir: str) -> dict | None:
  path = os.path.join(workdir, BEST_JSON)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def abstract_state(task, seed: int, sharding=None):
  """ShapeDtypeStructs of the task's state (with `sharding`, when given)."""
  abstract = jax.eval_shape(task.init_state, seed)
  if sharding is None:
    return abstract
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), abstract)


def manager(workdir: str, *, best: bool = False, keep: int = 1, create: bool = False):
  return checkpoint.manager(os.path.join(workdir, BEST) if best else workdir, keep=keep,
                            create=create)


def restore(workdir: str, task, seed: int, *, step: int | None = None, best: bool = False,
            sharding=None):
  """The state at `step` (default: the latest, or the best with `best=True`), checked
  against the task's state shapes (a ConfigError naming the first mismatch)."""
  if best:
    info = best_info(workdir)
    if info is None:
      raise ConfigError(f"no best checkpoint in {workdir!r} (train with train.eval_every > 0)")
    step = info["step"] if step is None else step
  return checkpoint.restore_checked(os.path.join(workdir, BEST) if best else workdir,
                                    task.init_state, seed, step=step, sharding=sharding)


def open_run(workdir: str, *, step: int | None = None, best: bool = False,
             replica: int | None = None):
  """(task, state) of a workdir, on one device. For a population, `replica` picks one
  member and the inner task is returned."""
  config = load_config(workdir)
  task = build_task(config)
  state = restore(workdir, task, config.seed, step=step, best=best)
  if task.members > 1:   # a population
    if replica is None:
      raise ConfigError(f"{workdir!r} holds a population of {task.replicas} replicas: pass "
                        f"--replica=0..{task.replicas - 1}")
    return task.member(state, replica)
  if replica is not None:
    raise ConfigError(f"--replica: {workdir!r} holds a single model, not a population")
  return task, state
