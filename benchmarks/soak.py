"""Soak test: kill -9 a training run at random moments (checkpoint writes included), restart
it each time, and compare the final state with an uninterrupted run of the same config.

  python benchmarks/soak.py [--kills=20] [--config=configs/gan.py:digits,smoke]
      [--config.train.steps=2000 ...]

Each restart is `python run.py train` in a subprocess on the same workdir; half the kills land
at a uniformly random time in [min_delay, max_delay] seconds after the start, the other half
the moment a checkpoint write is seen under way (an Orbax tmp directory). Reports: kills, restarts that
resumed (every restart after a kill continued from a checkpoint and the last one finished with
exit 0), the kills that landed while a checkpoint was being written (a step directory still
`.orbax-checkpoint-tmp` right after the kill), and whether the final state is bit-identical
to the uninterrupted run's. JSON in benchmarks/results/.
"""

from __future__ import annotations

import argparse
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

from benchmarks import common
from artjax.tasks import open_run


def _cli(workdir, spec, overrides):
  return [sys.executable, os.path.join(common.ROOT, "run.py"), "train", f"--config={spec}",
          f"--workdir={workdir}", *overrides]


def _leaves(workdir):
  _, state = open_run(workdir)
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
  kills, resumed_ok, during_save, starts = 0, 0, 0, 0
  t_soak = time.time()
  while True:
    log = open(os.path.join(base, f"start{starts}.log"), "w+")   # a pipe would fill and block
    proc = subprocess.Popen(_cli(soak, args.config, overrides), cwd=common.ROOT,
                            stdout=subprocess.DEVNULL, stderr=log, text=True)
    starts += 1
    if kills < args.kills:
      try:
        if kills % 2:   # every other kill waits for a checkpoint write to be under way
          _wait_for_write(proc, soak, args.max_delay)
        else:
          proc.wait(timeout=rng.uniform(args.min_delay, args.max_delay))
      except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        during_save += _mid_save(soak)
        continue
    proc.wait()
    log.seek(0)
    err = log.read()
    if proc.returncode != 0:
      raise SystemExit(f"restart {starts} failed (exit {proc.returncode}): {err[-2000:]}")
    resumed_ok = starts - 1
    break
  a, b = _leaves(ref), _leaves(soak)
  identical = len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
  rec = {"config": args.config, "overrides": overrides, "steps": config.train.steps,
         "kills": kills, "restarts_resumed": resumed_ok, "starts": starts,
         "kills_during_checkpoint_write": during_save, "bit_identical": identical,
         "reference_wall_s": round(ref_wall, 1), "soak_wall_s": round(time.time() - t_soak, 1),
         "machine": common.machine()}
  path = common.save("soak", rec)
  print(f"{kills} kills ({during_save} during a checkpoint write), {resumed_ok}/{kills} restarts "
        f"resumed, final state bit-identical to the uninterrupted run: {identical}")
  print(f"wrote {path}")
  shutil.rmtree(base, ignore_errors=True)
  return rec


def _wait_for_write(proc, workdir, limit):
  """Returns as soon as an Orbax step directory is being written (polled every 0.5 ms);
  raises TimeoutExpired after `limit` seconds or returns when the process ends."""
  folder = os.path.join(workdir, "checkpoints")
  t = time.time()
  while time.time() - t < limit:
    if proc.poll() is not None:
      return
    if _writing(folder):
      raise subprocess.TimeoutExpired(proc.args, limit)
    time.sleep(0.0005)
  raise subprocess.TimeoutExpired(proc.args, limit)


def _writing(folder) -> bool:
  """A step being written: an Orbax tmp directory, or a step directory not yet finalised
  (no _CHECKPOINT_METADATA)."""
  try:
    names = os.listdir(folder)
  except OSError:
    return False
  return any("tmp" in d or (d.isdigit() and not os.path.exists(
      os.path.join(folder, d, "_CHECKPOINT_METADATA"))) for d in names)


def _mid_save(workdir) -> int:
  """1 when the kill left an unfinished checkpoint write behind."""
  return int(_writing(os.path.join(workdir, "checkpoints")))


if __name__ == "__main__":
  main()
