"""Time to quality: training wall time until FDD (our evaluator, the validation-size sample
against the training set) first reaches a threshold, artjax vs the PyTorch peer running the
same recipe (benchmarks/torch_recipe.py), in one run, interleaved chunk by chunk.

  python benchmarks/time_to_quality.py [--threshold-ratio=1.3] [--chunk=500] [--max-steps=12000]

Only training time is counted (sampling and evaluation are excluded for both). Results:
a table on stdout and JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json


import jax
import numpy as np

import common
from artjax.cli import load_evaluator
from artjax.evaluation import metrics


def fdd(ev, images, train_feats):
  return float(metrics.frechet_distance(ev.features(images), train_feats))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--config", default="configs/gan.py:digits")
  p.add_argument("--threshold-ratio", type=float, default=1.3, help="x the real floor")
  p.add_argument("--chunk", type=int, default=500)
  p.add_argument("--max-steps", type=int, default=12000)
  p.add_argument("--threads", type=int, default=0)
  p.add_argument("--out", default=common.RESULTS)
  args, config = common.parse(p, argv)
  config.train.update(steps=args.max_steps, steps_per_dispatch=100, eval_every=0)
  ev = load_evaluator(config.data.name, config.data.data_dir or None)
  ds = ev.dataset
  n = len(ds.images("validation"))
  train_feats = ev.features(ds.images("train"))
  floor = fdd(ev, ds.images("validation"), train_feats)
  threshold = args.threshold_ratio * floor
  print(f"real floor FDD {floor:.2f}; threshold {threshold:.2f} ({args.threshold_ratio}x)")

  prep = common.Prepared(config, num_devices=1)
  compile_s = prep.compile_s
  sample = jax.jit(prep.task.sample, static_argnums=2)

  from torch_recipe import TorchRecipe
  peer = TorchRecipe(ds.images("train"), ds.labels("train"), config, threads=args.threads or None)

  curves = {"artjax": [], "torch": []}
  clock = {"artjax": compile_s, "torch": 0.0}
  reached = {"artjax": None, "torch": None}
  step = 0
  while step < args.max_steps and not all(reached.values()):
    clock["artjax"] += prep.run(args.chunk // 100)
    clock["torch"] += peer.run(args.chunk)
    step += args.chunk
    a = fdd(ev, np.asarray(sample(prep.state, 0, n)["images"]), train_feats)
    b = fdd(ev, peer.sample(n)[0], train_feats)
    for name, v in (("artjax", a), ("torch", b)):
      curves[name].append({"step": step, "wall_s": round(clock[name], 2), "fdd": round(v, 3)})
      if reached[name] is None and v <= threshold:
        reached[name] = {"step": step, "wall_s": round(clock[name], 2)}
    print(f"step {step:6d}  artjax fdd {a:7.2f} ({clock['artjax']:6.1f}s)   "
          f"torch fdd {b:7.2f} ({clock['torch']:6.1f}s)", flush=True)
  result = {"config": args.config, "floor_fdd": floor, "threshold": threshold,
            "threshold_ratio": args.threshold_ratio, "reached": reached, "curves": curves,
            "artjax_compile_s": compile_s, "torch_version": __import__("torch").__version__}
  if all(reached.values()):
    result["speedup_wall"] = reached["torch"]["wall_s"] / reached["artjax"]["wall_s"]
  print(json.dumps({k: result[k] for k in ("floor_fdd", "threshold", "reached")}))
  if "speedup_wall" in result:
    print(f"artjax reaches FDD <= {threshold:.2f} {result['speedup_wall']:.2f}x sooner (wall)")
  common.save("time_to_quality", result)


if __name__ == "__main__":
  main()
