"""Training images/s of artjax's convolutional models against PyTorch peers of the same
architecture and step, side by side in one run (A B A B ..., medians), fp32 and bf16:
the DCGAN (`configs/gan.py:emoji32_dcgan`, 32 and 64 px) against
benchmarks/peers/torch_dcgan_peer.py, the StyleGAN2-class model (`configs/stylegan.py`)
against benchmarks/peers/torch_stylegan_peer.py, the pix2pix translator
(`configs/translate.py`) against benchmarks/peers/torch_pix2pix_peer.py. artjax runs the loop's own fused program
(`train.steps_per_dispatch` steps in a `lax.scan`, state donated); both sides use every core.
Also XLA's FLOPs per step and the fraction of the matmul peak measured in the same run.
Augmentation is off in both (the step, not the policy).

  python -m benchmarks.conv_throughput [--models=dcgan32,dcgan64,stylegan32]
      [--dtype=fp32,bf16] [--steps=4] [--repeats=3] [--batch=B] [--no-torch]
"""

from __future__ import annotations

import argparse
import os
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common

MODELS = {
    "dcgan32": ("configs/gan.py:emoji32_dcgan", 32, "dcgan"),
    "dcgan64": ("configs/gan.py:emoji32_dcgan", 64, "dcgan"),
    "stylegan32": ("configs/stylegan.py:emoji32", 32, "stylegan"),
    "stylegan64": ("configs/stylegan.py:emoji64", 64, "stylegan"),
    "pix2pix32": ("configs/translate.py:emoji32", 32, "pix2pix"),
    "pix2pix64": ("configs/translate.py:emoji64", 64, "pix2pix"),
    # the projected GAN (no PyTorch peer: artjax's side only, even without --no-torch)
    "projected32": ("configs/projected.py:emoji32", 32, "projected"),
    "projected64": ("configs/projected.py:emoji64", 64, "projected"),
}
# what each kind turns off: augmentation (the step, not the policy)
_NO_AUG = {"dcgan": ["--config.gan.diffaugment=", "--config.model.name=dcgan",
                     "--config.model.width=32"],
           "stylegan": ["--config.gan.diffaugment=", "--config.gan.ada_target=0.0"],
           "pix2pix": ["--config.translate.shift=0", "--config.translate.flip=False"],
           "projected": ["--config.gan.diffaugment="]}


def _config(model, dtype, steps, batch=0):
  from artjax.commands import options as cli
  spec, res, kind = MODELS[model]
  over = [f"--config.data.resolution={res}", *_NO_AUG[kind],
          f"--config.train.dtype={dtype}", "--config.train.eval_every=0",
          "--config.train.sample_every=0", f"--config.train.steps_per_dispatch={steps}"]
  if batch:
    over.append(f"--config.train.batch_size={batch}")
  return cli.load_config(os.path.join(common.ROOT, spec), over), kind


def _peer(kind, c, bench, dtype):
  if kind == "projected":
    return None
  train = bench.host_data["train"]
  if kind == "pix2pix":
    from benchmarks.peers.torch_pix2pix_peer import TorchPix2Pix
    return TorchPix2Pix(c, np.asarray(train["source"]), np.asarray(train["target"]), dtype)
  images, labels = np.asarray(train["images"]), np.asarray(train["labels"])
  if kind == "dcgan":
    from benchmarks.peers.torch_dcgan_peer import TorchDCGAN
    return TorchDCGAN(c, images, labels, dtype)
  from benchmarks.peers.torch_stylegan_peer import TorchStyleGAN
  return TorchStyleGAN(c, images, labels, dtype)


def _prepare(model, dtype, steps, with_torch, batch=0):
  c, kind = _config(model, dtype, steps, batch)
  bench = common.Prepared(c)
  with common.parallel.active_mesh(bench.mesh):
    one = jax.jit(bench.task.train_step).lower(bench.state, bench.data).compile()
  flops, _ = common.cost(one)
  bench.run(1)                                     # warm-up
  peer = _peer(kind, c, bench, dtype) if with_torch else None   # None: no peer for this kind
  if peer is not None:
    peer.run(2)
  print(f"prepared {model} {dtype} (XLA {flops / 1e9:.1f} GFLOP/step)", flush=True)
  return {"model": model, "dtype": dtype, "config": c, "bench": bench, "peer": peer,
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
        print(f"  repeat {i}: {r['model']} {r['dtype']} {name} {r['times'][name][-1]:.3f} s/step",
              flush=True)
      dt = {"fp32": jnp.float32, "bf16": jnp.bfloat16}[r["dtype"]]
      b = r["config"].train.batch_size
      shapes = [(b * 16 * 16, 9 * 64, 64), (b * 32 * 32, 9 * 32, 32), (1024, 1024, 1024)]
      peaks[r["dtype"]] = max(peaks.get(r["dtype"], 0.0), common.matmul_peak(dt, shapes, 3))
  return peaks


def _record(r, peaks):
  b = r["config"].train.batch_size
  med = {k: statistics.median(v) for k, v in r["times"].items() if v}
  rec = {"model": r["model"], "dtype": r["dtype"], "batch": b,
         "resolution": r["config"].data.resolution,
         "s_per_step": {k: [round(t, 4) for t in v] for k, v in r["times"].items() if v},
         "median_s_per_step": {k: round(v, 4) for k, v in med.items()},
         "images_per_s": {k: round(b / v, 1) for k, v in med.items()},
         "flops_per_step": r["flops_per_step"], "measured_peak_flops": peaks[r["dtype"]]}
  rec["fraction_of_peak"] = round(r["flops_per_step"] / med["artjax"] / peaks[r["dtype"]], 3)
  if "torch" in med:
    rec["speedup_vs_torch"] = round(med["torch"] / med["artjax"], 2)
  return rec


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--models", default="dcgan32,dcgan64,stylegan32")
  p.add_argument("--dtype", default="fp32,bf16")
  p.add_argument("--steps", type=int, default=4, help="steps per timed call (artjax: one dispatch)")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--no-torch", action="store_true")
  p.add_argument("--batch", type=int, default=0, help="batch size (0: the config's)")
  args = p.parse_args(argv)
  bad = [m for m in args.models.split(",") if m not in MODELS]
  if bad:
    p.error(f"unknown --models {bad}; choose from {sorted(MODELS)}")
  if not args.no_torch:
    import torch
    torch.set_num_threads(os.cpu_count())
  runs = [_prepare(m, d, args.steps, not args.no_torch, args.batch)
          for m in args.models.split(",") for d in args.dtype.split(",")]
  peaks = _measure(runs, args.steps, args.repeats)
  records = [_record(r, peaks) for r in runs]
  print(f"{'model':11} {'dtype':5} {'artjax img/s':>12} {'torch img/s':>12} {'ratio':>6} {'of peak':>8}")
  for rec in records:
    ips = rec["images_per_s"]
    torch_ips = f"{ips['torch']:12.1f}" if "torch" in ips else f"{'-':>12}"
    ratio = f"{rec['speedup_vs_torch']:6.2f}" if "speedup_vs_torch" in rec else f"{'-':>6}"
    print(f"{rec['model']:11} {rec['dtype']:5} {ips['artjax']:12.1f} {torch_ips} {ratio} "
          f"{rec['fraction_of_peak']:8.3f}")
  common.save("conv_throughput", {"records": records})


if __name__ == "__main__":
  main()
