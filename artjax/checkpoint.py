"""Orbax checkpoints of the whole run state (one pytree of arrays)."""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp

from artjax import ConfigError


def manager(workdir: str, *, keep: int = 3, create: bool = True) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints"),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=create),
      item_handlers=ocp.StandardCheckpointHandler())


def latest_step(workdir: str) -> int | None:
  """The newest finalised checkpoint step in `workdir` (None if none), read from the
  directory names alone: no CheckpointManager, so no multi-process barrier."""
  path = os.path.join(os.path.abspath(workdir), "checkpoints")
  if not os.path.isdir(path):
    return None
  steps = [int(d) for d in os.listdir(path)
           if d.isdigit() and os.path.exists(os.path.join(path, d, "_CHECKPOINT_METADATA"))]
  return max(steps) if steps else None


def _flat_shapes(tree) -> dict:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  def name(path):
    return "/".join(str(getattr(p, "key", getattr(p, "idx", getattr(p, "name", p)))) for p in path)
  return {name(k): tuple(getattr(v, "shape", ())) for k, v in flat}


def check_compatible(mgr: ocp.CheckpointManager, step: int, abstract_state) -> None:
  """Raises ConfigError naming the first leaf whose shape differs from the config's model."""
  meta = mgr.item_metadata(step)
  tree = getattr(meta, "tree", meta)
  want = _flat_shapes(abstract_state)
  have = _flat_shapes(tree)
  missing = sorted(set(want) - set(have))
  extra = sorted(set(have) - set(want))
  if missing or extra:
    raise ConfigError(
        f"checkpoint at step {step} in {mgr.directory} does not match the config: "
        f"{'missing ' + missing[0] if missing else 'unexpected ' + extra[0]} "
        f"({len(missing)} missing, {len(extra)} unexpected leaves)")
  for k, shape in want.items():
    if have[k] != shape:
      raise ConfigError(f"checkpoint at step {step} in {mgr.directory} does not match the "
                        f"config: {k} has shape {have[k]}, the config's model needs {shape}")


def save(mgr, step: int, state, *, force=False) -> None:
  mgr.save(step, args=ocp.args.StandardSave(state), force=force)


def restore(mgr, step: int, abstract_state):
  """Restores into `abstract_state` (ShapeDtypeStructs that carry shardings)."""
  return mgr.restore(step, args=ocp.args.StandardRestore(abstract_state))


def restore_checked(directory: str, init_fn, seed: int, *, step: int | None = None,
                    sharding=None):
  """The state in `directory`'s checkpoints at `step` (default: the latest), shaped like
  `jax.eval_shape(init_fn, seed)` and checked against it (a ConfigError naming the first
  mismatch); placed with `sharding` (default: the first local device)."""
  if sharding is None:
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  mgr = manager(directory, keep=1, create=False)
  try:
    step = mgr.latest_step() if step is None else step
    if step is None:
      raise ConfigError(f"no checkpoint in workdir {directory!r}")
    target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding),
                          jax.eval_shape(init_fn, seed))
    check_compatible(mgr, step, target)
    return restore(mgr, step, target)
  finally:
    mgr.close()
