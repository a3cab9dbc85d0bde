"""Run under XLA_FLAGS=--xla_force_host_platform_device_count=8 (by test_parallel.py).

Checks: 8-device data parallelism equals 1 device; checkpoints cross device counts;
a batch that the devices do not divide is refused before compiling."""

import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from artjax import ConfigError
from artjax.tasks import open_run as load_state
from artjax.tasks.training import train
from helpers import small_config  # noqa: E402


def leaves(wd):
  return [np.asarray(x) for x in jax.tree.leaves(load_state(wd)[1])]


def max_diff(a, b):
  return max(float(np.max(np.abs(x.astype(np.float64) - y))) if x.size else 0.0
             for x, y in zip(a, b, strict=True))


def main(out_dir, eight_device_run):
  """`eight_device_run`: the same 40-step config already trained on 8 devices (conftest's
  eight_device_run fixture, shared with test_multihost.py)."""
  import shutil
  assert jax.device_count() == 8, jax.devices()
  res = {}
  c1 = small_config(steps=40, batch_size=64, ckpt_every=20)
  c1.mesh.num_devices = 1
  shutil.copytree(eight_device_run, f"{out_dir}/d8")
  train(c1, f"{out_dir}/d1", quiet=True)
  res["params_8_vs_1"] = max_diff(leaves(f"{out_dir}/d8"), leaves(f"{out_dir}/d1"))
  # Checkpoint written on 8 devices, resumed on 1 (and the reverse), to 60 steps.
  for src, dst_devices, name in (("d8", 1, "8to1"), ("d1", 8, "1to8")):
    shutil.copytree(f"{out_dir}/{src}", f"{out_dir}/{name}")
    c = small_config(steps=60, batch_size=64, ckpt_every=20)
    c.mesh.num_devices = dst_devices
    s = train(c, f"{out_dir}/{name}", quiet=True)
    res[f"resume_{name}_steps"] = s["steps_this_run"]
  res["resume_cross_diff"] = max_diff(leaves(f"{out_dir}/8to1"), leaves(f"{out_dir}/1to8"))
  # ... and both end where an uninterrupted 60-step run on one device ends.
  ref = small_config(steps=60, batch_size=64, ckpt_every=20)
  ref.mesh.num_devices = 1
  train(ref, f"{out_dir}/ref60", quiet=True)
  for name in ("8to1", "1to8"):
    res[f"resume_{name}_vs_uninterrupted"] = max_diff(leaves(f"{out_dir}/{name}"), leaves(f"{out_dir}/ref60"))
  # Populations compose with the mesh: 2 replicas on 8 devices == on 1 device.
  for nd in (8, 1):
    cp = small_config(steps=20, batch_size=64)
    cp.mesh.num_devices = nd
    cp.train.num_replicas = 2
    cp.population.lr = (1e-4, 3e-4)
    train(cp, f"{out_dir}/pop{nd}", quiet=True)
  pops = []
  for nd in (8, 1):
    pops.append([np.asarray(x) for x in jax.tree.leaves(
        load_state(f"{out_dir}/pop{nd}", replica=1)[1])])
  res["population_8_vs_1"] = max_diff(*pops)
  bad = small_config(steps=20, batch_size=36)
  bad.mesh.num_devices = 8
  try:
    train(bad, f"{out_dir}/bad", quiet=True)
    res["indivisible_error"] = None
  except ConfigError as e:
    res["indivisible_error"] = str(e)
  print(json.dumps(res))


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2])
