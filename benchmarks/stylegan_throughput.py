"""Training images/s of the StyleGAN2-class model against a PyTorch peer of the same
architecture and step (benchmarks/peers/torch_stylegan_peer.py), side by side in one run:
for each config (default emoji32 and emoji64) and dtype, artjax's fused program (the loop's
own, state donated) and the peer alternate (A B A B ...), medians over the repeats. Also
XLA's FLOPs per step, the achieved FLOP/s and its fraction of the matmul peak measured in the
same run. Augmentation is off in both (`gan.diffaugment=""`): the step, not the policy.

  python -m benchmarks.stylegan_throughput [--configs=emoji32,emoji64] [--dtype=fp32,bf16]
      [--steps=4] [--repeats=3] [--no-torch]
"""

from __future__ import annotations

import argparse
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from configs.stylegan import get_config


def _config(name, dtype):
  c = get_config(name)
  c.gan.update(diffaugment="", ada_target=0.0)
  c.train.update(dtype=dtype, eval_every=0, sample_every=0)
  return c


def _prepare(name, dtype, steps, with_torch):
  c = _config(name, dtype)
  c.train.steps_per_dispatch = steps
  bench = common.Prepared(c)
  with common.parallel.active_mesh(bench.mesh):
    one = jax.jit(bench.task.train_step).lower(bench.state, bench.data).compile()
  flops, _ = common.cost(one)
  bench.run(1)                                     # warm-up
  peer = None
  if with_torch:
    from benchmarks.peers.torch_stylegan_peer import TorchStyleGAN
    train = bench.host_data["train"]
    peer = TorchStyleGAN(c, np.asarray(train["images"]), np.asarray(train["labels"]), dtype)
    peer.run(2)                                    # warm-up
  print(f"prepared {name} {dtype} (XLA {flops / 1e9:.1f} GFLOP/step)", flush=True)
  return {"name": name, "dtype": dtype, "config": c, "bench": bench, "peer": peer,
          "flops_per_step": flops, "times": {"artjax": [], "torch": []}}


def _measure(runs, steps, repeats):
  peaks = {}
  for i in range(repeats):
    for r in runs:
      jobs = [("artjax", lambda r=r: r["bench"].run(1))]
      if r["peer"] is not None:
        jobs.append(("torch", lambda r=r: r["peer"].run(steps)))
      for name, fn in (jobs if i % 2 == 0 else jobs[::-1]):
        r["times"][name].append(fn() / steps)
        print(f"  repeat {i}: {r['name']} {r['dtype']} {name} {r['times'][name][-1]:.3f} s/step", flush=True)
      dt = {"fp32": jnp.float32, "bf16": jnp.bfloat16}[r["dtype"]]
      b = r["config"].train.batch_size
      shapes = [(b * 16 * 16, 9 * 64, 64), (b * 32 * 32, 9 * 32, 32), (1024, 1024, 1024)]
      peaks[r["dtype"]] = max(peaks.get(r["dtype"], 0.0), common.matmul_peak(dt, shapes, 3))
  return peaks


def _record(r, peaks):
  b = r["config"].train.batch_size
  med = {k: statistics.median(v) for k, v in r["times"].items() if v}
  rec = {"config": r["name"], "dtype": r["dtype"], "batch": b,
         "resolution": r["config"].data.resolution,
         "s_per_step": {k: [round(t, 4) for t in v] for k, v in r["times"].items() if v},
         "median_s_per_step": {k: round(v, 4) for k, v in med.items()},
         "images_per_s": {k: round(b / v, 1) for k, v in med.items()},
         "flops_per_step": r["flops_per_step"], "measured_peak_flops": peaks[r["dtype"]]}
  rec["achieved_flops"] = r["flops_per_step"] / med["artjax"]
  rec["fraction_of_peak"] = round(rec["achieved_flops"] / peaks[r["dtype"]], 3)
  if "torch" in med:
    rec["speedup_vs_torch"] = round(med["torch"] / med["artjax"], 2)
  return rec


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--configs", default="emoji32,emoji64")
  p.add_argument("--dtype", default="fp32,bf16")
  p.add_argument("--steps", type=int, default=4, help="steps per timed call (artjax: one dispatch)")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--no-torch", action="store_true")
  args = p.parse_args(argv)
  import torch
  import os
  torch.set_num_threads(os.cpu_count())
  runs = [_prepare(n, d, args.steps, not args.no_torch)
          for n in args.configs.split(",") for d in args.dtype.split(",")]
  peaks = _measure(runs, args.steps, args.repeats)
  records = [_record(r, peaks) for r in runs]
  print(f"{'config':8} {'dtype':5} {'artjax img/s':>12} {'torch img/s':>12} {'ratio':>6} {'of peak':>8}")
  for rec in records:
    ips = rec["images_per_s"]
    print(f"{rec['config']:8} {rec['dtype']:5} {ips['artjax']:12.1f} {ips.get('torch', 0):12.1f} "
          f"{rec.get('speedup_vs_torch', 0):6.2f} {rec['fraction_of_peak']:8.3f}")
  common.save("stylegan_throughput", {"records": records, "threads": os.cpu_count()})


if __name__ == "__main__":
  main()
