"""Device mesh and shardings for data parallelism.

One `jax.jit` step over a `jax.make_mesh` mesh: the batch lives on `P('data')`,
the run state and the on-device dataset are replicated. Code inside the step calls
`shard_batch(x)` to pin a freshly drawn batch to the data axis; outside a mesh it
is the identity, so the same step runs on one device and on a pod.
"""

from __future__ import annotations

import contextlib

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from artjax import ConfigError

DATA = "data"
_ACTIVE: list = []


def initialize_distributed(cfg=None) -> bool:
  """Starts multi-process JAX when the config or the environment asks for it.

  `distributed.coordinator` (host:port), `distributed.num_processes`,
  `distributed.process_id` — or the same in $ARTJAX_COORDINATOR, $ARTJAX_NUM_PROCESSES,
  $ARTJAX_PROCESS_ID — start processes explicitly (CPU hosts use gloo collectives);
  `distributed.auto=True` lets JAX read the cluster (TPU pods, SLURM, ...). Must run before
  anything touches a device; a second call is a no-op. Returns True if distributed.
  """
  import os
  d = cfg.distributed if cfg is not None else None
  coord = (d.coordinator if d is not None else "") or os.environ.get("ARTJAX_COORDINATOR", "")
  auto = bool(d.auto) if d is not None else False
  if not coord and not auto:
    return False
  if getattr(initialize_distributed, "_done", False):
    return True
  if coord:
    num = int((d.num_processes if d is not None else 0) or os.environ.get("ARTJAX_NUM_PROCESSES", 0))
    pid = d.process_id if d is not None else -1
    pid = int(os.environ.get("ARTJAX_PROCESS_ID", -1)) if pid is None or pid < 0 else int(pid)
    if num < 1 or not 0 <= pid < num:
      raise ConfigError(f"distributed.coordinator={coord!r} needs num_processes >= 1 and "
                        f"0 <= process_id < num_processes (got {num}, {pid})")
    jax.distributed.initialize(coordinator_address=coord, num_processes=num, process_id=pid)
  else:
    jax.distributed.initialize()
  initialize_distributed._done = True
  return True


def to_host(tree):
  """Device arrays -> numpy, also for replicated arrays spread over several processes."""
  def get(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
      if a.sharding.is_fully_replicated:
        return np.asarray(a.addressable_data(0))
      from jax.experimental import multihost_utils
      return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(a)
  return jax.tree.map(get, tree)


def make_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
  """A 1-D ('data',) mesh over `num_devices` (0 = all) devices."""
  devices = jax.devices()
  n = num_devices or len(devices)
  if n > len(devices):
    raise ConfigError(f"mesh.num_devices={n} but only {len(devices)} devices are visible")
  return jax.make_mesh((n,), (DATA,), devices=devices[:n],
                       axis_types=(jax.sharding.AxisType.Auto,))


def check_batch(global_batch: int, mesh) -> None:
  n = mesh.shape[DATA]
  if global_batch % n:
    raise ConfigError(f"train.batch_size={global_batch} is not divisible by the {n} devices "
                      f"of the data axis; use a multiple of {n}")


def replicated(mesh):
  return NamedSharding(mesh, P())



@contextlib.contextmanager
def active_mesh(mesh):
  _ACTIVE.append(mesh)
  try:
    with jax.set_mesh(mesh):
      yield mesh
  finally:
    _ACTIVE.pop()


def shard_batch(x):
  """Constrains every leaf of `x` to be split over the data axis on its leading dim."""
  if not _ACTIVE or _ACTIVE[-1].shape[DATA] == 1:
    return x
  mesh = _ACTIVE[-1]
  return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(
      a, NamedSharding(mesh, P(DATA, *([None] * (a.ndim - 1))))), x)


def replicate(tree, mesh):
  """Host arrays (identical on every process) -> global arrays replicated on the mesh."""
  sharding = replicated(mesh)
  return jax.tree.map(
      lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a), np.shape(a)), tree)


def place_data(host: dict, mesh) -> dict:
  """Puts a task's data on the mesh.

  `host["train"]` (per-example arrays, leading axis N) is split over the data axis:
  padded to a multiple of the device count, each process contributes only its contiguous
  block of rows, and `jax.make_array_from_process_local_data` assembles the global array;
  `train_size` (= N, so padding is never drawn) is added. Everything else (evaluation
  arrays, evaluator weights) is replicated. The global array is the same whatever the
  number of processes, so runs on 1 and on several hosts draw the same batches.
  """
  out = replicate({k: v for k, v in host.items() if k != "train"}, mesh)
  if "train" not in host:
    return out
  leaves = jax.tree.leaves(host["train"])
  n = int(np.shape(leaves[0])[0])
  devices = mesh.shape[DATA]
  procs, proc = jax.process_count(), jax.process_index()
  n_pad = -(-n // devices) * devices
  block = n_pad // procs

  def put(a):
    a = np.asarray(a)
    if n_pad > n:
      a = np.concatenate([a, np.zeros((n_pad - n,) + a.shape[1:], a.dtype)])
    local = a[proc * block:(proc + 1) * block]
    spec = P(DATA, *([None] * (a.ndim - 1)))
    return jax.make_array_from_process_local_data(NamedSharding(mesh, spec), local, a.shape)

  out["train"] = jax.tree.map(put, host["train"])
  out["train_size"] = replicate(np.int32(n), mesh)
  return out
