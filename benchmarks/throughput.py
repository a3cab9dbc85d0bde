"""Training throughput of artjax, side by side with a PyTorch peer.

  python benchmarks/throughput.py [--config=configs/gan.py:seed] [--data=digits28]
      [--batch=64,256,1024] [--dtype=fp32|bf16|fp32,bf16] [--vs-torch] [--repeats=7]

For each (batch, dtype): compile time, XLA FLOPs per step (cost_analysis), peak memory
(memory_analysis), steps/s and samples/s (median of --repeats timed dispatches after
warm-up, with min and max), achieved FLOP/s and its fraction of this device's peak (measured
in the same run with a large matmul), and the input pipeline's share (real on-device data
vs synthetic). With --vs-torch the PyTorch peer runs interleaved (A B A B ...) and the
ratio is the median of the pairwise ratios. Results: a table on stdout and JSON under
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import common
from artjax import parallel

# Datasheet dense peaks (FLOP/s) for accelerators, for context when running there.
DATASHEET_PEAKS = {
    "TPU v4": {"bf16": 275e12}, "TPU v5e": {"bf16": 197e12}, "TPU v5p": {"bf16": 459e12},
    "TPU v6e": {"bf16": 918e12}, "NVIDIA A100": {"fp32": 19.5e12, "bf16": 312e12},
    "NVIDIA H100": {"fp32": 67e12, "bf16": 989e12}, "NVIDIA H200": {"fp32": 67e12, "bf16": 989e12},
}


def measure_peak(dtype, sizes=(1024, 2048, 4096), repeats=5) -> float:
  """Best matmul FLOP/s this device reaches in this run (the 'peak' we compare against):
  the fastest of several square sizes, each the best of `repeats`."""
  best = 0.0
  for n in sizes:
    a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), dtype)
    b = jnp.asarray(np.random.default_rng(1).normal(size=(n, n)), dtype)
    # fp32 accumulation: how artjax's models multiply bf16 (artjax.models.precision)
    f = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32).sum())
    f(a, b).block_until_ready()
    times = []
    for _ in range(repeats):
      t = time.perf_counter()
      f(a, b).block_until_ready()
      times.append(time.perf_counter() - t)
    best = max(best, 2 * n ** 3 / min(times))
  return best


cost = common.cost



class ArtjaxBench(common.Prepared):
  """The loop's fused step for `config`, with XLA's FLOPs per step and peak memory."""

  def __init__(self, config, mesh, synthetic=False):
    host = None
    if synthetic:
      from artjax.tasks import build_task
      real = build_task(config).device_data()
      rng = np.random.default_rng(0)
      host = dict(real, train=dict(real["train"], images=rng.integers(
          0, 256, real["train"]["images"].shape).astype(np.uint8)))
    super().__init__(config, num_devices=mesh.devices.size, host_data=host)
    # XLA's cost analysis counts a scan body once: take FLOPs from one unrolled step.
    with parallel.active_mesh(self.mesh):
      one = jax.jit(self.task.train_step).lower(self.state, self.data).compile()
    self.flops_per_step, _ = cost(one)
    _, self.memory = cost(self.compiled)
    self.run(1)  # warm-up


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", default="configs/gan.py:seed")
  p.add_argument("--data", default="digits28", help="dataset (digits28: 28x28 like MNIST, offline)")
  p.add_argument("--batch", default="64,256,1024")
  p.add_argument("--dtype", default="fp32")
  p.add_argument("--steps-per-dispatch", type=int, default=50)
  p.add_argument("--dispatches", type=int, default=4, help="dispatches per timed repeat")
  p.add_argument("--repeats", type=int, default=7)
  p.add_argument("--vs-torch", action="store_true")
  p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
  p.add_argument("--name", default="")
  p.add_argument("--out", default=common.RESULTS)
  args, base_config = common.parse(p, argv)

  mesh = parallel.make_mesh(0)
  device = jax.devices()[0]
  peaks = {dt: measure_peak({"fp32": jnp.float32, "bf16": jnp.bfloat16}[dt])
           for dt in args.dtype.split(",")}
  records = []
  dtypes = args.dtype.split(",")
  for batch in [int(b) for b in args.batch.split(",")]:
    runs = {}
    for dtype in dtypes:
      config = base_config.copy_and_resolve_references()
      config.data.name = args.data
      config.train.update(batch_size=batch, dtype=dtype, steps_per_dispatch=args.steps_per_dispatch,
                          eval_every=0)
      bench = ArtjaxBench(config, mesh)
      synth = ArtjaxBench(config, mesh, synthetic=True)
      peer = None
      if args.vs_torch:
        from torch_peer import TorchSeedGAN
        peer = TorchSeedGAN(bench.host_data["train"]["images"], batch, latent=config.model.latent_dim,
                            threads=args.threads or None, dtype=dtype)
        peer.run(20)  # warm-up
      runs[dtype] = dict(config=config, bench=bench, synth=synth, peer=peer, times=[], synth_times=[],
                         torch_times=[])
    steps = args.steps_per_dispatch * args.dispatches
    for _ in range(args.repeats):            # interleaved: A B A B ... (and across dtypes)
      for r in runs.values():
        r["times"].append(r["bench"].run(args.dispatches))
        r["synth_times"].append(r["synth"].run(args.dispatches))
        if r["peer"]:
          r["torch_times"].append(r["peer"].run(steps))
    for dtype, r in runs.items():
      config, bench, peer = r["config"], r["bench"], r["peer"]
      sps = [steps / t for t in r["times"]]
      rec = {
          "name": args.name or f"{config.model.name}-{args.data}",
          "config": args.config, "data": args.data, "batch": batch, "dtype": dtype,
          "devices": jax.device_count(), "device_kind": device.device_kind,
          "platform": device.platform, "machine": platform.processor() or platform.machine(),
          "cpu_count": os.cpu_count(),
          "steps_per_dispatch": args.steps_per_dispatch, "repeats": args.repeats,
          "steps_per_s": statistics.median(sps), "steps_per_s_min": min(sps),
          "steps_per_s_max": max(sps), "samples_per_s": statistics.median(sps) * batch,
          "compile_s": bench.compile_s,
          "flops_per_step": bench.flops_per_step,
          "peak_memory_bytes": bench.memory,
          "measured_peak_flops": peaks[dtype],
      }
      rec["achieved_flops"] = rec["flops_per_step"] * rec["steps_per_s"]
      rec["fraction_of_peak"] = rec["achieved_flops"] / peaks[dtype]
      synth_sps = statistics.median(steps / t for t in r["synth_times"])
      rec["synthetic_steps_per_s"] = synth_sps
      rec["input_pipeline_share"] = max(0.0, 1.0 - rec["steps_per_s"] / synth_sps)
      if dtype != "fp32" and "fp32" in runs:   # same run, interleaved pairs
        base = [steps / t for t in runs["fp32"]["times"]]
        rec["ratio_vs_fp32"] = statistics.median(a / b for a, b in zip(sps, base))
      if peer:
        tsps = [steps / t for t in r["torch_times"]]
        ratios = [a / b for a, b in zip(sps, tsps)]
        rec.update(torch_steps_per_s=statistics.median(tsps), torch_version=__import__("torch").__version__,
                   torch_dtype="bf16 autocast" if dtype == "bf16" else dtype,
                   ratio_vs_torch=statistics.median(ratios), ratios_pairwise=[round(x, 3) for x in ratios])
      records.append(rec)
      line = (f"{rec['name']:>16} b={batch:<5} {dtype} steps/s {rec['steps_per_s']:9.1f} "
              f"[{rec['steps_per_s_min']:.1f}-{rec['steps_per_s_max']:.1f}]  compile {rec['compile_s']:.2f}s  "
              f"{rec['flops_per_step'] / 1e6:.1f} MFLOP/step  {rec['fraction_of_peak'] * 100:5.1f}% of peak  "
              f"input share {rec['input_pipeline_share'] * 100:4.1f}%")
      if "ratio_vs_fp32" in rec:
        line += f"  vs fp32 {rec['ratio_vs_fp32']:.2f}x"
      if peer:
        line += f"  torch {rec['torch_steps_per_s']:8.1f}  ratio {rec['ratio_vs_torch']:.2f} {rec['ratios_pairwise']}"
      print(line, flush=True)
  os.makedirs(args.out, exist_ok=True)
  stamp = time.strftime("%Y%m%d-%H%M%S")
  path = os.path.join(args.out, f"throughput-{records[0]['name']}-{stamp}.json")
  with open(path, "w") as f:
    json.dump({"peaks_measured": peaks, "datasheet_peaks": DATASHEET_PEAKS, "records": records}, f, indent=2)
  print_table(records)
  print(f"wrote {path}")
  return records


def print_table(records):
  cols = ["name", "batch", "dtype", "devices", "steps_per_s", "fraction_of_peak", "compile_s",
          "ratio_vs_fp32", "torch_steps_per_s", "ratio_vs_torch"]
  print("| " + " | ".join(cols) + " |")
  print("|" + "---|" * len(cols))
  for r in records:
    cells = []
    for c in cols:
      v = r.get(c, "-")
      cells.append(f"{v:.3g}" if isinstance(v, float) else str(v))
    print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
