"""Soak test: kill -9 a training run at random moments (checkpoint writes included), restart
it each time, and compare the final state with an uninterrupted run of the same config.

  python benchmarks/soak.py [--kills=20] [--config=configs/gan.py:digits,smoke]
      [--config.train.steps=2000 ...]

Each restart is `python run.py train` in a subprocess on the same workdir; kills land at a
uniformly random time in [min_delay, max_delay] seconds after the start (the run checkpoints
every `train.ckpt_every` steps, so many land during a save). Reports: kills, restarts that
resumed (exit 0 at the end, no error), steps re-done after kills, whether the final
checkpoint is bit-identical to the uninterrupted run's. JSON in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

import common
from artjax import checkpoint, runs


def _cli(workdir, spec, overrides):
  return [sys.executable, os.path.join(common.ROOT, "run.py"), "train", f"--config={spec}",
          f"--workdir={workdir}", *overrides]


def _leaves(workdir):
  _, state = runs.open_run(workdir)
  return [np.asarray(x) for x in jax.tree.leaves(state)]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", default="configs/gan.py:digits,smoke")
  p.add_argument("--kills", type=int, default=20)
  p.add_argument("--min-delay", type=float, default=4.0)
  p.add_argument("--max-delay", type=float, default=12.0)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default=common.RESULTS)
  args, rest = p.parse_known_args(argv)
  overrides = rest or ["--config.train.steps=3000", "--config.train.steps_per_dispatch=20",
                       "--config.train.ckpt_every=100", "--config.train.log_every=100"]
  config = common.parse(p, [f"--config={args.config}", *overrides])[1]
  rng = random.Random(args.seed)
  base = tempfile.mkdtemp(prefix="artjax_soak_")
  ref, soak = os.path.join(base, "reference"), os.path.join(base, "soak")
  t = time.time()
  subprocess.run(_cli(ref, args.config, overrides), check=True, capture_output=True, cwd=common.ROOT)
  ref_wall = time.time() - t
  kills, resumed_ok, redone, starts = 0, 0, 0, 0
  while True:
    proc = subprocess.Popen(_cli(soak, args.config, overrides), cwd=common.ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    starts += 1
    if kills < args.kills:
      try:
        proc.wait(timeout=rng.uniform(args.min_delay, args.max_delay))
      except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        redone += max(0, _logged_step(soak) - (checkpoint.latest_step(soak) or 0))
        continue
    err = proc.communicate()[1]
    if proc.returncode != 0:
      raise SystemExit(f"restart {starts} failed (exit {proc.returncode}): {err[-2000:]}")
    resumed_ok = starts - 1
    break
  a, b = _leaves(ref), _leaves(soak)
  identical = len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
  rec = {"config": args.config, "overrides": overrides, "steps": config.train.steps,
         "kills": kills, "restarts_resumed": resumed_ok, "starts": starts,
         "steps_redone_after_kills": redone, "bit_identical": identical,
         "reference_wall_s": round(ref_wall, 1), "machine": common.machine()}
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, f"soak-{common.stamp()}.json")
  with open(path, "w") as f:
    json.dump(rec, f, indent=2)
  print(f"{kills} kills, {resumed_ok}/{kills} restarts resumed, {redone} steps redone, "
        f"final state bit-identical to the uninterrupted run: {identical}")
  print(f"wrote {path}")
  shutil.rmtree(base, ignore_errors=True)
  return rec


def _logged_step(workdir) -> int:
  """The last step metrics.jsonl records (how far a killed run had got)."""
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      lines = [l for l in f if l.strip()]
    return json.loads(lines[-1])["step"] if lines else 0
  except (OSError, ValueError):
    return 0


if __name__ == "__main__":
  main()
