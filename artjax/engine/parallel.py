"""Device mesh, logical axis rules and shardings: data, FSDP and tensor parallelism.

The mesh always has three axes, `data`, `fsdp` and `tensor` (`--config.mesh.shape=
"data=2,fsdp=2,tensor=2"`, one size may be -1 = the remaining devices; default: every device
on `data`). One `jax.jit` step over it: the batch is split over `data` x `fsdp`; parameters,
their optimizer state and every other state leaf of the same shape are laid out by the
**logical axis rules below** (the one place logical names meet mesh axes, MaxText-style):
models annotate their weights with logical names only (`artjax.nn.logical`), never with
mesh axes. A dimension that its mesh axes do not divide stays unsplit. XLA (GSPMD) inserts the
all-gathers and reduce-scatters; code inside the step calls `shard_batch(x)` to pin a freshly
drawn batch; outside a mesh that is the identity, so one step runs on one device and on a pod.
"""

from __future__ import annotations

import contextlib
import math

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from artjax import ConfigError
from artjax.engine import keypath

DATA, FSDP, TENSOR = "data", "fsdp", "tensor"
AXES = (DATA, FSDP, TENSOR)
BATCH = (DATA, FSDP)          # mesh axes that split the batch

# Logical axis name -> mesh axes (in order of preference). Parameters: `embed` (model width,
# conv channels between layer pairs) is split over fsdp (ZeRO-3 style: gathered for use,
# gradients reduce-scattered), the per-head, hidden-unit and vocabulary axes over tensor
# (Megatron style). Activations: `batch` on data x fsdp.
RULES = (
    ("batch", BATCH),
    ("embed", (FSDP,)),
    ("heads", (TENSOR,)),
    ("mlp", (TENSOR,)),
    ("vocab", (TENSOR,)),
)
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


def parse_shape(spec: str, num_devices: int) -> dict:
  """"data=2,fsdp=2,tensor=2" (any subset, one size may be -1) -> {axis: size} over
  `num_devices` devices; "" = every device on data."""
  sizes = {a: 1 for a in AXES}
  if not spec.strip():
    sizes[DATA] = num_devices
    return sizes
  free = None
  for part in spec.split(","):
    name, _, val = part.partition("=")
    name = name.strip()
    if name not in AXES or not val.strip().lstrip("-").isdigit():
      raise ConfigError(f"mesh.shape={spec!r}: expected comma-separated axis=size with axes "
                        f"{', '.join(AXES)} (e.g. \"data=2,fsdp=2,tensor=2\")")
    size = int(val)
    if size == -1 and free is None:
      free = name
    elif size < 1:
      raise ConfigError(f"mesh.shape={spec!r}: sizes are >= 1, and at most one may be -1")
    sizes[name] = size
  fixed = math.prod(v for k, v in sizes.items() if k != free)
  if free is not None:
    if num_devices % fixed:
      raise ConfigError(f"mesh.shape={spec!r}: {num_devices} devices are not divisible by {fixed}")
    sizes[free] = num_devices // fixed
  if math.prod(sizes.values()) != num_devices:
    raise ConfigError(f"mesh.shape={spec!r} needs {math.prod(sizes.values())} devices, the run "
                      f"has {num_devices} (mesh.num_devices=0 means all visible devices)")
  return sizes


def make_mesh(num_devices: int = 0, shape: str = "") -> jax.sharding.Mesh:
  """A (data, fsdp, tensor) mesh over `num_devices` (0 = all) devices, sized by `shape`."""
  devices = jax.devices()
  n = num_devices or len(devices)
  if n > len(devices):
    raise ConfigError(f"mesh.num_devices={n} but only {len(devices)} devices are visible")
  sizes = parse_shape(shape, n)
  return jax.make_mesh(tuple(sizes[a] for a in AXES), AXES, devices=devices[:n],
                       axis_types=(jax.sharding.AxisType.Auto,) * len(AXES))


def mesh_of(config) -> jax.sharding.Mesh:
  return make_mesh(config.mesh.num_devices, config.mesh.shape)


def batch_devices(mesh) -> int:
  """How many ways the batch is split (data x fsdp)."""
  return math.prod(mesh.shape[a] for a in BATCH)


def check_batch(global_batch: int, mesh) -> None:
  n = batch_devices(mesh)
  if global_batch % n:
    raise ConfigError(f"train.batch_size={global_batch} is not divisible by the {n} devices "
                      f"of the data x fsdp axes; use a multiple of {n}")


def replicated(mesh):
  return NamedSharding(mesh, P())


def logical_to_spec(names, shape, mesh) -> P:
  """Logical axis names (one per dimension, None = unnamed) -> a PartitionSpec on `mesh` by
  RULES; mesh axes of size 1, axes already used and axes that do not divide the dimension
  are skipped (that dimension stays whole)."""
  rules = dict(RULES)
  used, out = set(), []
  for name, dim in zip(names, shape):
    axes = []
    for a in rules.get(name, ()) if name else ():
      size = mesh.shape[a]
      if size > 1 and a not in used and dim % (math.prod(mesh.shape[x] for x in axes) * size) == 0:
        axes.append(a)
    used.update(axes)
    out.append(tuple(axes) if len(axes) > 1 else (axes[0] if axes else None))
  return P(*out)


def _path(path) -> tuple:
  return keypath.names(path)


def state_shardings(abstract, param_axes: dict, mesh):
  """NamedShardings for every leaf of `abstract` (the run state's ShapeDtypeStructs).

  `param_axes` ({state key: pytree of logical name tuples}, `Task.param_axes`): a state leaf
  whose path ends with a weight's path inside its state key and whose trailing shape has the
  weight's rank (the weight itself, its optimizer moments, EMA copies, masks; a population's
  extra leading axis stays unsplit) takes that weight's layout; all else is replicated."""
  table = {}
  for top in param_axes.values():
    for path, names in jax.tree_util.tree_flatten_with_path(
        top, is_leaf=lambda x: isinstance(x, (tuple, P)))[0]:
      table.setdefault(_path(path), tuple(names))
  lengths = sorted({len(k) for k in table}, reverse=True)

  def one(path, leaf):
    key, shape = _path(path), tuple(leaf.shape)
    for n in lengths:
      names = table.get(key[-n:]) if len(key) >= n else None
      if names and len(shape) >= len(names):
        spec = logical_to_spec((None,) * (len(shape) - len(names)) + names, shape, mesh)
        return NamedSharding(mesh, spec)
    return NamedSharding(mesh, P())

  return jax.tree_util.tree_map_with_path(one, abstract)


def with_shardings(abstract, shardings):
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                      abstract, shardings)


def bytes_per_device(tree) -> int:
  """Bytes one device holds of `tree` (arrays or ShapeDtypeStructs with shardings)."""
  total = 0
  for a in jax.tree.leaves(tree):
    shape = a.sharding.shard_shape(a.shape) if getattr(a, "sharding", None) is not None else a.shape
    total += math.prod(shape) * np.dtype(a.dtype).itemsize
  return int(total)


@contextlib.contextmanager
def active_mesh(mesh):
  _ACTIVE.append(mesh)
  try:
    with jax.set_mesh(mesh):
      yield mesh
  finally:
    _ACTIVE.pop()


def shard_batch(x):
  """Constrains every leaf of `x` to be split over data x fsdp on its leading dim."""
  if not _ACTIVE or batch_devices(_ACTIVE[-1]) == 1:
    return x
  mesh = _ACTIVE[-1]
  return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(
      a, NamedSharding(mesh, P(BATCH, *([None] * (a.ndim - 1))))), x)


def _global(a, sharding):
  """A host array (identical on every process) -> a global array with `sharding`: each
  process supplies the shards its own devices hold."""
  a = np.asarray(a)
  return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])


def replicate(tree, mesh):
  """Host arrays (identical on every process) -> global arrays replicated on the mesh."""
  sharding = replicated(mesh)
  return jax.tree.map(lambda a: _global(a, sharding), tree)


def place_data(host: dict, mesh) -> dict:
  """Puts a task's data on the mesh.

  `host["train"]` (per-example arrays, leading axis N) is split over data x fsdp: padded to a
  multiple of that device count, each device holding its contiguous block of rows;
  `train_size` (= N, so padding is never drawn) is added. Everything else (evaluation
  arrays, evaluator weights) is replicated. The global array is the same whatever the
  number of processes, so runs on 1 and on several hosts draw the same batches.
  """
  out = replicate({k: v for k, v in host.items() if k != "train"}, mesh)
  if "train" not in host:
    return out
  leaves = jax.tree.leaves(host["train"])
  n = int(np.shape(leaves[0])[0])
  devices = batch_devices(mesh)
  n_pad = -(-n // devices) * devices

  def put(a):
    a = np.asarray(a)
    if n_pad > n:
      a = np.concatenate([a, np.zeros((n_pad - n,) + a.shape[1:], a.dtype)])
    return _global(a, NamedSharding(mesh, P(BATCH, *([None] * (a.ndim - 1)))))

  out["train"] = jax.tree.map(put, host["train"])
  out["train_size"] = replicate(np.int32(n), mesh)
  return out
