"""Device mesh and shardings for data parallelism.

One `jax.jit` step over a `jax.make_mesh` mesh: the batch lives on `P('data')`,
the run state and the on-device dataset are replicated. Code inside the step calls
`shard_batch(x)` to pin a freshly drawn batch to the data axis; outside a mesh it
is the identity, so the same step runs on one device and on a pod.
"""

from __future__ import annotations

import contextlib
import math

import jax
from jax.sharding import NamedSharding, PartitionSpec as P

from artjax import ConfigError

DATA = "data"
_ACTIVE: list = []


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


def batch_sharding(mesh):
  return NamedSharding(mesh, P(DATA))


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
  return jax.device_put(tree, replicated(mesh))


def num_data_shards(mesh) -> int:
  return math.prod(mesh.shape.values())
