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
import os
import platform
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from artjax.engine import parallel

DATASHEET_PEAKS = common.DATASHEET_PEAKS


def step_shapes(config, batch: int) -> list[tuple[int, int, int]]:
  """The [m, k] x [k, n] products of the MLP GAN step (forward and both backward products),
  for the peak: small products that stay in cache can run faster than large squares."""
  m = config.model
  img = 28 * 28 if config.data.name == "digits28" else 8 * 8
  lat, w = m.latent_dim * (2 if m.get("conditional") else 1), m.width
  return [(batch, lat, w), (batch, w, img), (2 * batch, img, w), (w, batch, img), (img, 2 * batch, w),
          (2 * batch, w, img), (1024, 1024, 1024), (2048, 2048, 2048)]


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
  p.add_argument("--no-torch-compile", action="store_true", help="skip the torch.compile peer")
  p.add_argument("--threads", type=int, default=0,
                 help="torch threads (0: the CPU count, what XLA:CPU's thread pool uses)")
  p.add_argument("--name", default="")
  args, base_config = common.parse(p, argv)
  threads = args.threads or os.cpu_count()
  if args.vs_torch:
    import torch
    torch.set_num_threads(threads)
  mesh = parallel.make_mesh(0)
  records, peaks = [], {}
  for batch in [int(b) for b in args.batch.split(",")]:
    runs = _prepare(args, base_config, batch, mesh, threads)
    _measure(args, runs, peaks)
    records += [_record(args, batch, dtype, r, runs, peaks[dtype], threads) for dtype, r in runs.items()]
  over = [r for r in records if r["fraction_of_peak"] > 1.0]
  if over:
    which = ", ".join(f"b={r['batch']} {r['dtype']}: {r['fraction_of_peak']:.2f}" for r in over)
    print(f"error: achieved FLOP/s above the measured peak ({which}): the peak does not bound "
          "the work, so no fraction is reported and nothing is written", flush=True)
    return None
  common.save(f"throughput-{records[0]['name']}", {
      "peaks_measured": peaks, "datasheet_peaks": DATASHEET_PEAKS, "records": records})
  print_table(records)
  return records


def _prepare(args, base_config, batch, mesh, threads):
  runs = {}
  for dtype in args.dtype.split(","):
    config = base_config.copy_and_resolve_references()
    config.data.name = args.data
    config.train.update(batch_size=batch, dtype=dtype, steps_per_dispatch=args.steps_per_dispatch,
                        eval_every=0)
    bench = ArtjaxBench(config, mesh)
    r = dict(config=config, bench=bench, synth=ArtjaxBench(config, mesh, synthetic=True),
             peers={}, times={"artjax": [], "synthetic": []})
    if args.vs_torch:
      from benchmarks.peers.torch_peer import TorchSeedGAN
      for name, compiled in (("torch eager", False), ("torch.compile", True)):
        if compiled and args.no_torch_compile:
          continue
        peer = TorchSeedGAN(bench.host_data["train"]["images"], batch, latent=config.model.latent_dim,
                            threads=threads, dtype=dtype, compile=compiled)
        peer.run(20)  # warm-up (and compilation)
        r["peers"][name] = peer
        r["times"][name] = []
    runs[dtype] = r
  return runs


def _measure(args, runs, peaks):
  """Repeats; in each, every contender once in a rotated order (A B C, B C A, ...), and the
  matmul peak measured again (same conditions as the steps); the peak is the max seen."""
  steps = args.steps_per_dispatch * args.dispatches
  for i in range(args.repeats):
    for dtype, r in runs.items():
      jobs = [("artjax", lambda r=r: r["bench"].run(args.dispatches)),
              ("synthetic", lambda r=r: r["synth"].run(args.dispatches))]
      jobs += [(n, lambda p=p: p.run(steps)) for n, p in r["peers"].items()]
      for name, fn in jobs[i % len(jobs):] + jobs[:i % len(jobs)]:
        r["times"][name].append(fn())
      dt = {"fp32": jnp.float32, "bf16": jnp.bfloat16}[dtype]
      shapes = step_shapes(r["config"], r["config"].train.batch_size)
      peaks[dtype] = max(peaks.get(dtype, 0.0), common.matmul_peak(dt, shapes, repeats=3))


def _record(args, batch, dtype, r, runs, peak, threads):
  config, bench = r["config"], r["bench"]
  steps = args.steps_per_dispatch * args.dispatches
  sps = [steps / t for t in r["times"]["artjax"]]
  device = jax.devices()[0]
  rec = {
      "name": args.name or f"{config.model.name}-{args.data}",
      "config": args.config, "data": args.data, "batch": batch, "dtype": dtype,
      "devices": jax.device_count(), "device_kind": device.device_kind,
      "platform": device.platform, "machine": platform.processor() or platform.machine(),
      "cpu_count": os.cpu_count(), "xla_threads": os.cpu_count(),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "steps_per_dispatch": args.steps_per_dispatch, "repeats": args.repeats,
      "order": "rotated per repeat", "steps_per_s": statistics.median(sps),
      "steps_per_s_min": min(sps), "steps_per_s_max": max(sps),
      "samples_per_s": statistics.median(sps) * batch, "compile_s": bench.compile_s,
      "flops_per_step": bench.flops_per_step, "peak_memory_bytes": bench.memory,
      "measured_peak_flops": peak,
      "peak_how": "max over all repeats of the best of 3 calls per product, the step's own "
                  "[m,k]x[k,n] shapes and 1024/2048 squares, measured between the contenders"}
  rec["achieved_flops"] = rec["flops_per_step"] * rec["steps_per_s"]
  rec["fraction_of_peak"] = rec["achieved_flops"] / peak
  synth_sps = statistics.median(steps / t for t in r["times"]["synthetic"])
  rec["synthetic_steps_per_s"] = synth_sps
  rec["input_pipeline_share"] = max(0.0, 1.0 - rec["steps_per_s"] / synth_sps)
  if dtype != "fp32" and "fp32" in runs:   # same run, interleaved pairs
    base = [steps / t for t in runs["fp32"]["times"]["artjax"]]
    rec["ratio_vs_fp32"] = statistics.median(a / b for a, b in zip(sps, base))
  if r["peers"]:
    import torch
    peers = {}
    for name in r["peers"]:
      tsps = [steps / t for t in r["times"][name]]
      peers[name] = {"steps_per_s": statistics.median(tsps),
                     "ratios_pairwise": [round(a / b, 3) for a, b in zip(sps, tsps)]}
    best = max(peers, key=lambda n: peers[n]["steps_per_s"])
    rec.update(torch_peers=peers, torch_best=best, torch_steps_per_s=peers[best]["steps_per_s"],
               torch_version=torch.__version__, torch_threads=torch.get_num_threads(),
               torch_dtype="bf16 autocast" if dtype == "bf16" else dtype,
               ratio_vs_torch=statistics.median(peers[best]["ratios_pairwise"]),
               ratios_pairwise=peers[best]["ratios_pairwise"])
  line = (f"{rec['name']:>16} b={batch:<5} {dtype} steps/s {rec['steps_per_s']:9.1f} "
          f"[{rec['steps_per_s_min']:.1f}-{rec['steps_per_s_max']:.1f}]  compile {rec['compile_s']:.2f}s  "
          f"{rec['flops_per_step'] / 1e6:.1f} MFLOP/step  {rec['fraction_of_peak'] * 100:5.1f}% of peak  "
          f"input share {rec['input_pipeline_share'] * 100:4.1f}%")
  if "ratio_vs_fp32" in rec:
    line += f"  vs fp32 {rec['ratio_vs_fp32']:.2f}x"
  if r["peers"]:
    line += "".join(f"  {n} {v['steps_per_s']:8.1f}" for n, v in rec["torch_peers"].items())
    line += f"  ratio vs {rec['torch_best']} {rec['ratio_vs_torch']:.2f} {rec['ratios_pairwise']}"
  print(line, flush=True)
  return rec


def print_table(records):
  cols = ["name", "batch", "dtype", "devices", "steps_per_s", "fraction_of_peak", "compile_s",
          "ratio_vs_fp32", "torch_best", "torch_steps_per_s", "ratio_vs_torch"]
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
