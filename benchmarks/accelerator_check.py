"""One command for the first session lent a GPU or TPU: the convolutional and Transformer
benchmarks at accelerator sizes, one JSON, within a time budget (default 8 minutes), so that
the device time goes to measuring, not to setting up.

  python -m benchmarks.accelerator_check [--size=accelerator|cpu|adapt] [--budget=480]

`accelerator`: the DCGAN at 64 px and the StyleGAN2-class model at 64 px
(benchmarks.conv_throughput, fp32 and bf16, artjax only: a device machine may have no torch),
and the Music Transformer `configs/music.py:large` training step (benchmarks.music_throughput,
bf16, no sampling). `adapt`: the seed's recipe as its methods x K x 3-seed grid
(benchmarks.adapt_grid: the imported face DCGAN adapted to emoji faces; resumable). `cpu`:
the same commands as `accelerator` at small sizes (tests/slow runs them). Each
benchmark runs in its own process with what is left of the budget; one that fails or runs
out of time is recorded as such and the rest still run. Writes
benchmarks/results/accelerator_check-STAMP.json: the devices, each command, its exit code,
wall time and the records its own JSON holds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

from benchmarks import common

PLANS = {
    "accelerator": [
        ["-m", "benchmarks.conv_throughput", "--models=dcgan64,stylegan64,projected64", "--dtype=fp32,bf16",
         "--steps=20", "--repeats=3", "--no-torch"],
        ["-m", "benchmarks.music_throughput", "--config=configs/music.py:large", "--no-torch",
         "--sample-tokens=0", "--repeats=3", "--config.train.dtype=bf16"],
    ],
    # the seed's recipe as a 3-seed grid (docs/finetune.md): faces -> emoji faces; resumable,
    # so a second session continues it (--budget bounds each session)
    "adapt": [
        ["-m", "benchmarks.adapt_grid", "--config=configs/gan.py:faces64",
         "--pretrained=runs/faces", "--import_from=gan_face_generate", "--ks=10,50,200",
         "--methods=full,freeze_d,lora,scratch", "--seeds=0,1,2", "--steps=300"],
    ],
    "cpu": [
        ["-m", "benchmarks.conv_throughput", "--models=dcgan32", "--dtype=fp32", "--steps=2",
         "--repeats=1", "--no-torch", "--batch=8"],
        ["-m", "benchmarks.music_throughput", "--config=configs/music.py:default,smoke",
         "--no-torch", "--sample-tokens=0", "--repeats=1", "--batch=4",
         "--steps-per-dispatch=2"],
    ],
}


def _run(cmd, timeout):
  t = time.perf_counter()
  try:
    r = subprocess.run([sys.executable] + cmd, capture_output=True, text=True,
                       timeout=max(timeout, 1), cwd=common.ROOT)
    code, out, err = r.returncode, r.stdout, r.stderr
  except subprocess.TimeoutExpired as e:
    code, out, err = "timeout", (e.stdout or b"").decode(errors="replace"), ""
  row = {"command": "python " + " ".join(cmd), "exit": code,
         "wall_s": round(time.perf_counter() - t, 1)}
  wrote = re.findall(r"^wrote (\S+\.json)$", out, re.M)
  if wrote and os.path.exists(wrote[-1]):
    with open(wrote[-1], encoding="utf-8") as f:
      row["result_file"], row["result"] = os.path.relpath(wrote[-1], common.ROOT), json.load(f)
  if code != 0:
    row["error_tail"] = (err or out)[-1500:]
  print(f"{row['command']}: exit {code} in {row['wall_s']} s", flush=True)
  return row


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--size", choices=sorted(PLANS), default="accelerator")
  p.add_argument("--budget", type=float, default=480.0, help="seconds for all commands")
  args = p.parse_args(argv)
  import jax
  start, rows = time.perf_counter(), []
  plan = PLANS[args.size]
  for i, cmd in enumerate(plan):
    left = args.budget - (time.perf_counter() - start)
    rows.append(_run(cmd, left / (len(plan) - i) if i < len(plan) - 1 else left))
  common.save("accelerator_check", {
      "size": args.size, "budget_s": args.budget,
      "devices": [f"{d.platform}:{d.device_kind}" for d in jax.devices()],
      "wall_s": round(time.perf_counter() - start, 1), "runs": rows,
      "ok": all(r["exit"] == 0 for r in rows)})
  return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
  sys.exit(main())
