"""Orbax checkpoints of the whole run state (one pytree of arrays), verified.

Every save also writes `DIR/digests/STEP.json` (before Orbax starts, so a finalised step
always has one): the sha256 of every array's bytes and the leaves' shapes and dtypes.
`restore_verified` walks the finalised steps newest to oldest: a step whose leaves differ
from the task's state is a config mismatch (ConfigError); a step that fails to load
(truncated file, missing manifest or metadata) or whose bytes differ from its digest (bit
flips) is damaged: one warning names it and the next older step is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp

from artjax import ConfigError
from artjax.engine import keypath
from artjax.engine import parallel

DIGESTS = "digests"


def manager(workdir: str, *, keep: int = 3, create: bool = True) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints"),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=create),
      item_handlers=ocp.StandardCheckpointHandler())


def steps(workdir: str) -> list[int]:
  """Finalised checkpoint steps in `workdir`, newest first, read from the directory names
  alone (no CheckpointManager, so no multi-process barrier)."""
  path = os.path.join(os.path.abspath(workdir), "checkpoints")
  if not os.path.isdir(path):
    return []
  return sorted((int(d) for d in os.listdir(path)
                 if d.isdigit() and os.path.exists(os.path.join(path, d, "_CHECKPOINT_METADATA"))),
                reverse=True)


def latest_step(workdir: str) -> int | None:
  """The newest finalised step (None if none); `restore_verified` may fall back from it."""
  found = steps(workdir)
  return found[0] if found else None


def _name(path) -> str:
  return "/".join(keypath.names(path))


def _flat_shapes(tree) -> dict:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {_name(k): tuple(getattr(v, "shape", ())) for k, v in flat}


def digest(state) -> dict:
  """{"sha256", "leaves": {path: [shape, dtype]}} of a state's host values."""
  h = hashlib.sha256()
  leaves = {}
  for path, x in jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]:
    x = np.asarray(x)   # tobytes() is C order (ascontiguousarray would make scalars 1-d)
    name = _name(path)
    h.update(name.encode())
    h.update(x.tobytes())
    leaves[name] = [list(x.shape), str(x.dtype)]
  return {"sha256": h.hexdigest(), "leaves": leaves}


def _digest_path(directory: str, step: int) -> str:
  return os.path.join(os.path.abspath(directory), DIGESTS, f"{step}.json")


def read_digest(directory: str, step: int) -> dict | None:
  try:
    with open(_digest_path(directory, step)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def check_shapes(have: dict, abstract_state, where: str) -> None:
  """Raises ConfigError naming the first leaf whose shape differs from the config's model."""
  want = _flat_shapes(abstract_state)
  missing = sorted(set(want) - set(have))
  extra = sorted(set(have) - set(want))
  if missing or extra:
    raise ConfigError(
        f"checkpoint {where} does not match the config: "
        f"{'missing ' + missing[0] if missing else 'unexpected ' + extra[0]} "
        f"({len(missing)} missing, {len(extra)} unexpected leaves)")
  for k, shape in want.items():
    if tuple(have[k]) != shape:
      raise ConfigError(f"checkpoint {where} does not match the config: {k} has shape "
                        f"{tuple(have[k])}, the config's model needs {shape}")


def check_compatible(mgr: ocp.CheckpointManager, step: int, abstract_state) -> None:
  """Shapes recorded for `step` (its digest, else Orbax's metadata) against the config."""
  d = read_digest(os.path.dirname(str(mgr.directory)), step)
  if d is not None:
    have = {k: v[0] for k, v in d["leaves"].items()}
  else:
    meta = mgr.item_metadata(step)
    have = _flat_shapes(getattr(meta, "tree", meta))
  check_shapes(have, abstract_state, f"at step {step} in {mgr.directory}")


def save(mgr, step: int, state, *, force=False) -> None:
  """Writes the digest, then the Orbax checkpoint (asynchronously; wait_until_finished)."""
  directory = os.path.dirname(str(mgr.directory))
  # Every process takes part in gathering sharded leaves (a collective); process 0 writes.
  d = digest(parallel.to_host(state))
  if jax.process_index() == 0:
    path = _digest_path(directory, step)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
      json.dump({"step": step, **d}, f)
    os.replace(path + ".tmp", path)
  mgr.save(step, args=ocp.args.StandardSave(state), force=force)


def _file_digests(step_dir: str) -> dict:
  out = {}
  for dp, _, fs in os.walk(step_dir):
    for f in fs:
      path = os.path.join(dp, f)
      with open(path, "rb") as fh:
        out[os.path.relpath(path, step_dir)] = [os.path.getsize(path),
                                                hashlib.sha256(fh.read()).hexdigest()]
  return out


def save_and_wait(mgr, step: int, state, *, force: bool = False) -> None:
  """`save`, then wait until the step is on disk and record its files (size, sha256) in the
  digest, so damage is found before Orbax reads anything; then prune old digests."""
  save(mgr, step, state, force=force)
  mgr.wait_until_finished()
  directory = os.path.dirname(str(mgr.directory))
  if jax.process_index() == 0:
    d = read_digest(directory, step)
    d["files"] = _file_digests(os.path.join(str(mgr.directory), str(step)))
    path = _digest_path(directory, step)
    with open(path + ".tmp", "w") as f:
      json.dump(d, f)
    os.replace(path + ".tmp", path)
  prune_digests(directory)


def _files_problem(step_dir: str, files: dict) -> str | None:
  """Why the step's files differ from those recorded at save time (None: identical)."""
  for rel, (size, sha) in sorted(files.items()):
    path = os.path.join(step_dir, rel)
    if not os.path.exists(path):
      return f"{rel} is missing"
    if os.path.getsize(path) != size:
      return f"{rel} has {os.path.getsize(path)} bytes, {size} were written"
    with open(path, "rb") as fh:
      if hashlib.sha256(fh.read()).hexdigest() != sha:
        return f"{rel} differs from what was written (corrupted bytes)"
  return None


def prune_digests(directory: str) -> None:
  """Removes digests of steps Orbax no longer keeps."""
  keep = set(steps(directory))
  folder = os.path.join(os.path.abspath(directory), DIGESTS)
  if jax.process_index() != 0 or not os.path.isdir(folder):
    return
  for f in os.listdir(folder):
    stem = f.split(".")[0]
    if f.endswith(".json") and stem.isdigit() and int(stem) not in keep:
      os.remove(os.path.join(folder, f))


def restore(mgr, step: int, abstract_state):
  """Restores into `abstract_state` (ShapeDtypeStructs that carry shardings)."""
  return mgr.restore(step, args=ocp.args.StandardRestore(abstract_state))


def _load_one(mgr, directory, step, target):
  """(state, problem): the verified state of `step`, or None and why it is damaged."""
  d = read_digest(directory, step)
  if d is not None:   # a config mismatch is never reported as damage
    check_shapes({k: v[0] for k, v in d["leaves"].items()}, target,
                 f"at step {step} in {directory}")
    if "files" in d:
      problem = _files_problem(os.path.join(os.path.abspath(directory), "checkpoints", str(step)),
                               d["files"])
      if problem:
        return None, problem
  try:
    state = restore(mgr, step, target)
  except Exception as e:   # truncated data, missing manifest or metadata, ...
    if d is None:   # no digest: check the shapes Orbax recorded, if it can read them
      try:
        check_compatible(mgr, step, target)
      except ConfigError:
        raise
      except Exception:
        pass
    return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
  if d is not None and digest(parallel.to_host(state))["sha256"] != d["sha256"]:
    return None, "its arrays differ from the digest written with it (corrupted bytes)"
  if d is None:
    check_compatible(mgr, step, target)
  return state, None


def restore_verified(directory: str, target, *, step: int | None = None):
  """(step, state): the newest intact checkpoint in `directory` (or exactly `step`), restored
  into `target` (ShapeDtypeStructs with shardings). Damaged steps are skipped with a warning
  (ConfigError if none is intact, or if the requested `step` is damaged); a step whose shapes
  differ from `target` raises ConfigError (the config does not match)."""
  candidates = [step] if step is not None else steps(directory)
  if not candidates:
    raise ConfigError(f"no checkpoint in workdir {directory!r}")
  mgr = manager(directory, keep=1, create=False)
  damaged = []
  try:
    for s in candidates:
      state, problem = _load_one(mgr, directory, s, target)
      if state is not None:
        for bad, why in damaged:
          print(f"warning: checkpoint step {bad} in {directory} is damaged ({why}); using "
                f"step {s}", file=sys.stderr, flush=True)
        return s, state
      damaged.append((s, problem))
  finally:
    mgr.close()
  raise ConfigError(f"no intact checkpoint in {directory!r}: " +
                    "; ".join(f"step {s}: {p}" for s, p in damaged))


def restore_checked(directory: str, init_fn, seed: int, *, step: int | None = None,
                    sharding=None):
  """The verified state in `directory` at `step` (default: the newest intact one), shaped
  like `jax.eval_shape(init_fn, seed)`, placed with `sharding` (one sharding for every leaf,
  or a pytree of them like the state; default: the first local device)."""
  if sharding is None:
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.eval_shape(init_fn, seed)
  if isinstance(sharding, jax.sharding.Sharding):
    sharding = jax.tree.map(lambda _: sharding, abstract)
  target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        abstract, sharding)
  return restore_verified(directory, target, step=step)[1]
