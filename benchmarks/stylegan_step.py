"""Seconds per StyleGAN2-class training step (the loop's own fused program, state donated),
for each convolution implementation of `model.conv_impl` (and any `--config.x=y` override):
the measurement behind the CPU variants' `conv_impl=patches` (docs/gan.md).

  python benchmarks/stylegan_step.py [--config=configs/stylegan.py:emoji32]
      [--impls=patches,xla] [--steps=4] [--repeats=3] [--config.train.batch_size=64]
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks import common


def measure(config, impl: str, steps: int, repeats: int) -> dict:
  c = config.copy_and_resolve_references()
  c.model.conv_impl = impl
  c.train.update(steps_per_dispatch=steps, eval_every=0)
  p = common.Prepared(c)
  p.run(1)                                                  # warm-up dispatch
  times = [p.run(1) / steps for _ in range(repeats)]
  return {"conv_impl": impl, "compile_s": round(p.compile_s, 2),
          "s_per_step": [round(t, 4) for t in times],
          "median_s_per_step": round(statistics.median(times), 4),
          "images_per_s": round(c.train.batch_size / statistics.median(times), 2)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", default="configs/stylegan.py:emoji32")
  parser.add_argument("--impls", default="patches,xla")
  parser.add_argument("--steps", type=int, default=4, help="steps per fused dispatch")
  parser.add_argument("--repeats", type=int, default=3)
  args, config = common.parse(parser, argv)
  rows = [measure(config, impl, args.steps, args.repeats) for impl in args.impls.split(",")]
  base = rows[0]["median_s_per_step"]
  print(f"{'conv_impl':10} {'s/step':>8} {'img/s':>8} {'vs first':>9}")
  for r in rows:
    r["ratio_vs_first"] = round(r["median_s_per_step"] / base, 2)
    print(f"{r['conv_impl']:10} {r['median_s_per_step']:8.3f} {r['images_per_s']:8.1f} "
          f"{r['ratio_vs_first']:8.2f}x")
  common.save("stylegan_step", {"rows": rows, "batch_size": config.train.batch_size,
                                "config": config.to_dict()})


if __name__ == "__main__":
  main()
