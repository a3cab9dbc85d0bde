"""`run.py compare`: a side-by-side table of evaluated runs (their eval.json)."""

from __future__ import annotations

import json
import os

from artjax import ConfigError
from artjax.commands.evaluate import HEADLINE, fmt

SUMMARY = "side-by-side table of evaluated runs (after run.py eval), and a picture of them"
USAGE = "compare DIR_A DIR_B ... [--grid=FILE.png --num=8 --seed=0]"
POSITIONAL = True
MAX_NUM = 32


def define(fv, argv):
  from absl import flags
  flags.DEFINE_string("grid", None, "Image generators: a PNG with one row of samples per run, "
                      "in the order given (the same --seed for every run).", flag_values=fv)
  flags.DEFINE_integer("num", 8, f"With --grid: samples per row (1..{MAX_NUM}).", flag_values=fv)
  flags.DEFINE_integer("seed", 0, "With --grid: the sampling seed.", flag_values=fv)


def sample_rows(workdirs, path: str, num: int, seed: int) -> None:
  """One row of `num` samples (`run.py sample --seed`'s first ones) per run, as one PNG."""
  import jax
  import numpy as np
  from artjax.commands.options import check_outputs
  from artjax.engine.writers import image_grid, save_png
  from artjax.tasks import open_run
  if not 1 <= num <= MAX_NUM:
    raise ConfigError(f"--num must be in 1..{MAX_NUM}, got {num}")
  check_outputs({"--grid": path}, {})
  rows, shape = [], None
  for wd in workdirs:
    task, state = open_run(wd)
    if task.sample_kind != "images":
      raise ConfigError(f"--grid: {wd!r} draws no pictures ({task.config.task} run)")
    images = np.asarray(jax.device_get(jax.jit(task.sample, static_argnums=2)(
        state, seed, num))["images"])
    if shape not in (None, images.shape[1:]):
      raise ConfigError(f"--grid: {wd!r} draws {images.shape[1:]} pictures, the first run "
                        f"{shape}")
    shape = images.shape[1:]
    rows.append(images)
  save_png(path, image_grid(np.concatenate(rows), ncol=num, scale=max(1, 64 // shape[0])))
  print(f"wrote {len(rows)} rows of {num} samples to {path}")


def compare(workdirs) -> str:
  rows = []
  for wd in workdirs:
    path = os.path.join(wd, "eval.json")
    if not os.path.exists(path):
      raise ConfigError(f"no eval.json in {wd!r}: run `python run.py eval --workdir={wd}` first")
    with open(path) as f:
      rows.append((wd, json.load(f)))
  head = "| run | step | " + " | ".join(HEADLINE) + " | fdd/floor |"
  lines = [head, "|" + "---|" * (len(HEADLINE) + 3)]
  for wd, r in rows:
    s = r["samples"]
    lines.append(f"| {os.path.basename(os.path.normpath(wd))} | {r['step']} | " +
                 " | ".join(fmt(s.get(k)) for k in HEADLINE) +
                 f" | {s['fdd'] / max(r['floor']['fdd'], 1e-9):.2f} |")
  f = rows[0][1]["floor"]
  lines.append("| real floor | - | " + " | ".join(fmt(f.get(k)) for k in HEADLINE) + " | 1.00 |")
  table = "\n".join(lines)
  print(table)
  return table


def run(FLAGS, args, argv):
  if not args:
    raise ConfigError("compare needs one or more workdirs: run.py compare DIR_A DIR_B ...")
  compare(args)
  if FLAGS.grid:
    sample_rows(args, FLAGS.grid, FLAGS.num, FLAGS.seed)
