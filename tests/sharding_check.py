"""Run under XLA_FLAGS=--xla_force_host_platform_device_count=8 (by test_parallel.py).

FSDP and tensor parallelism: the music Transformer and the digits GANs (MLP and DCGAN) on
data=2,fsdp=2,tensor=2 and fsdp=8 meshes train to the same losses and weights as on one
device; the weights per device shrink about N-fold under fsdp=N; a checkpoint written under
one mesh resumes under another and ends where the uninterrupted one-device run ends."""

import json
import os
import shutil
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from artjax.tasks import open_run
from artjax.tasks.training import train
from helpers import music_config, small_config  # noqa: E402

MESHES = (("", 1), ("data=2,fsdp=2,tensor=2", 8), ("fsdp=8", 8))


def config(kind, steps, shape="", devices=1):
  if kind == "music":
    c = music_config(steps=steps, batch_size=16, ckpt_every=6, steps_per_dispatch=6, log_every=6)
    c.model.update(dropout=0.0, cond_dropout=0.0, d_model=64, d_ff=256, num_heads=4)
  else:
    c = small_config(steps=steps, batch_size=64, ckpt_every=6, steps_per_dispatch=6, log_every=6)
    c.model.name = kind
    if kind == "dcgan":   # SGD over 2 steps: with 500k leaky-ReLU inputs per batch, float
      # reassociation (1e-7) flips a few near zero and GAN training amplifies that within 4
      # steps (measured: 7e-5 at step 4); Adam also turns the noise into lr-sized steps.
      c.optim.update(name="sgd", lr=0.05)
      c.train.update(steps=2, steps_per_dispatch=2, log_every=2, ckpt_every=2)
  c.mesh.update(num_devices=devices, shape=shape)
  return c


def weights(wd):
  flat = jax.tree_util.tree_flatten_with_path(open_run(wd)[1])[0]
  return {jax.tree_util.keystr(p): np.asarray(x, np.float64) for p, x in flat}


def max_diff(a, b):
  assert a.keys() == b.keys(), sorted(set(a) ^ set(b))
  return max(float(np.max(np.abs(a[k] - b[k]))) if a[k].size else 0.0 for k in a)


def main(out):
  assert jax.device_count() == 8, jax.devices()
  res = {}
  for kind in ("music", "mlp", "dcgan"):
    runs = {}
    for shape, devices in MESHES:
      wd = os.path.join(out, f"{kind}_{shape or 'one'}")
      runs[shape] = (train(config(kind, 12, shape, devices), wd, quiet=True), weights(wd))
    one_summary, one = runs[""]
    loss_keys = [k for k in one_summary if k.endswith("loss")]
    for shape, (summary, w) in runs.items():
      if shape:
        res[f"{kind}/{shape}"] = {
            "max_weight_diff": max_diff(w, one),
            "max_loss_diff": max(abs(summary[k] - one_summary[k]) for k in loss_keys),
            "param_bytes_ratio": summary["param_bytes_per_device"] / one_summary["param_bytes_per_device"],
            "opt_bytes_ratio": summary["opt_bytes_per_device"] / one_summary["opt_bytes_per_device"],
            "mesh": summary["mesh"]}
  # A checkpoint of step 6 written under fsdp=8 resumes under data=2,fsdp=2,tensor=2.
  src, dst = os.path.join(out, "cross_a"), os.path.join(out, "cross_b")
  train(config("music", 6, "fsdp=8", 8), src, quiet=True)
  shutil.copytree(src, dst)
  s = train(config("music", 12, "data=2,fsdp=2,tensor=2", 8), dst, quiet=True)
  res["cross_mesh"] = {"steps_this_run": s["steps_this_run"],
                       "max_weight_diff": max_diff(weights(dst), weights(os.path.join(out, "music_one")))}
  print(json.dumps(res))


if __name__ == "__main__":
  main(sys.argv[1])
