"""Time to quality: training wall time until FDD (our evaluator, the validation-size sample
against the training set) first reaches a threshold, artjax vs the PyTorch peer running the
same recipe (benchmarks/torch_recipe.py), for several seeds per side, interleaved chunk by
chunk (seed s of artjax, then seed s of torch; the order alternates between seeds).

  python benchmarks/time_to_quality.py [--seeds=5] [--threshold-ratio=1.3] [--chunk=200]
      [--max-steps=12000]

Only training time is counted (sampling and evaluation are excluded for both); artjax's
seeds reuse one compiled program (its compile time is added to every seed's clock). The
ratio is reported per seed and as the median with its range. Results: stdout and JSON under
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

import jax
import numpy as np

from benchmarks import common
from artjax.tasks.training import load_evaluator
from artjax.evaluation import metrics


def fdd(ev, images, train_feats):
  return float(metrics.frechet_distance(ev.features(images), train_feats))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--config", default="configs/gan.py:digits")
  p.add_argument("--threshold-ratio", type=float, default=1.3, help="x the real floor")
  p.add_argument("--seeds", type=int, default=5)
  p.add_argument("--chunk", type=int, default=200, help="steps between FDD checks (x100)")
  p.add_argument("--max-steps", type=int, default=12000)
  p.add_argument("--threads", type=int, default=0, help="torch threads (0: the CPU count)")
  args, config = common.parse(p, argv)
  import torch
  torch.set_num_threads(args.threads or os.cpu_count())
  config.train.update(steps=args.max_steps, steps_per_dispatch=100, eval_every=0)
  ev = load_evaluator(config)
  ds = ev.dataset
  n = len(ds.images("validation"))
  train_feats = ev.features(ds.images("train"))
  floor = fdd(ev, ds.images("validation"), train_feats)
  threshold = args.threshold_ratio * floor
  print(f"real floor FDD {floor:.2f}; threshold {threshold:.2f} ({args.threshold_ratio}x)")
  prep = common.Prepared(config, num_devices=1)
  sample = jax.jit(prep.task.sample, static_argnums=2)
  from benchmarks.peers.torch_recipe import TorchRecipe
  runs = []
  for seed in range(args.seeds):
    prep.reset(config.seed + seed)
    peer = TorchRecipe(ds.images("train"), ds.labels("train"), config, seed=seed)
    runs.append(one_seed(args, seed, prep, peer, sample, ev, n, train_feats, threshold))
  result = {"config": args.config, "floor_fdd": floor, "threshold": threshold,
            "threshold_ratio": args.threshold_ratio, "seeds": args.seeds, "chunk": args.chunk,
            "runs": runs, "artjax_compile_s": prep.compile_s, "torch_version": torch.__version__}
  ratios = [r["speedup_wall"] for r in runs if "speedup_wall" in r]
  if ratios:
    result.update(speedup_wall_median=statistics.median(ratios), speedup_wall_min=min(ratios),
                  speedup_wall_max=max(ratios), seeds_reached_both=len(ratios))
    for side in ("artjax", "torch"):
      walls = [r["reached"][side]["wall_s"] for r in runs if r["reached"][side]]
      result[f"{side}_wall_s_median"] = statistics.median(walls)
    print(f"artjax reaches FDD <= {threshold:.2f} {result['speedup_wall_median']:.2f}x sooner "
          f"(median of {len(ratios)} seeds; range {min(ratios):.2f}-{max(ratios):.2f})")
  common.save("time_to_quality", result)


def one_seed(args, seed, prep, peer, sample, ev, n, train_feats, threshold):
  curves = {"artjax": [], "torch": []}
  clock = {"artjax": prep.compile_s, "torch": 0.0}
  reached = {"artjax": None, "torch": None}
  jobs = {"artjax": lambda: prep.run(args.chunk // 100), "torch": lambda: peer.run(args.chunk)}
  order = ["artjax", "torch"] if seed % 2 == 0 else ["torch", "artjax"]
  step = 0
  while step < args.max_steps and not all(reached.values()):
    for name in order:
      if reached[name] is None:
        clock[name] += jobs[name]()
    step += args.chunk
    values = {}
    if reached["artjax"] is None:
      values["artjax"] = fdd(ev, np.asarray(sample(prep.state, 0, n)["images"]), train_feats)
    if reached["torch"] is None:
      values["torch"] = fdd(ev, peer.sample(n)[0], train_feats)
    for name, v in values.items():
      curves[name].append({"step": step, "wall_s": round(clock[name], 2), "fdd": round(v, 3)})
      if v <= threshold:
        reached[name] = {"step": step, "wall_s": round(clock[name], 2)}
  out = {"seed": seed, "reached": reached, "curves": curves}
  if all(reached.values()):
    out["speedup_wall"] = reached["torch"]["wall_s"] / reached["artjax"]["wall_s"]
  print(f"seed {seed}: {json.dumps(reached)}", flush=True)
  return out


if __name__ == "__main__":
  main()
