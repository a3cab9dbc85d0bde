"""`run.py eval` and `run.py compare`: eval.json, a short report, side-by-side tables."""

from __future__ import annotations

import json
import os

import jax
import numpy as np

from artjax import ConfigError, runs
from artjax.evaluation import metrics
from artjax.evaluation.evaluator import Evaluator
from artjax.evaluation.images import evaluate_images
from artjax.evaluation.poetry_report import evaluate_poetry
from artjax.evaluation.music_report import evaluate_music
from artjax.writers import image_grid, save_png

HEADLINE = ("fdd", "inception_score", "precision", "recall", "density", "coverage",
            "classes_present", "label_accuracy", "nn_ratio", "ct")


def _fmt(v):
  if v is None:
    return "-"
  if isinstance(v, float):
    return f"{v:.3f}"
  return str(v)


def nearest_train_grid(images, train_images, rows: int = 20) -> np.ndarray:
  """Pairs (sample | its nearest training image in pixels), `rows` of them, as one grid."""
  a = np.asarray(images[:rows], np.float32).reshape(min(rows, len(images)), -1)
  t = np.asarray(train_images, np.float32).reshape(len(train_images), -1)
  nn = np.asarray(metrics.pairwise_distances(a, t)).argmin(axis=1)
  pairs = np.stack([images[:len(nn)], train_images[nn]], axis=1).reshape((-1,) + images.shape[1:])
  return image_grid(pairs, ncol=10, scale=max(1, 32 // images.shape[1]))


def evaluate_workdir(workdir: str, num: int | None = None, seed: int = 0, best: bool = False,
                     replica: int | None = None) -> dict:
  """eval.json / eval.md of a workdir's latest (or best) checkpoint. Image runs need their
  dataset's evaluator trained (the CLI trains it on first use)."""
  task, state = runs.open_run(workdir, best=best, replica=replica)
  if task.sample_kind == "tokens":
    return evaluate_music(task, state, workdir, num or 32, seed)
  if task.sample_kind == "poems":
    return evaluate_poetry(task, state, workdir, num or 32, seed)
  if task.sample_kind != "images":
    raise ConfigError(f"run.py eval knows image and music generators; {type(task).__name__} "
                      "has no samples")
  ev = Evaluator(task.config.data.name, task.config.data.data_dir or None)
  num = num or len(ev.dataset.images("validation"))
  s = jax.device_get(jax.jit(task.sample, static_argnums=2)(state, seed, num))
  result = evaluate_images(ev, np.asarray(s["images"]), s["labels"] if "labels" in s else None)
  result.update(workdir=os.path.abspath(workdir), step=int(state["step"]), seed=seed,
                checkpoint="best" if best else "latest")
  suffix = "" if replica is None else f"_r{replica}"
  with open(os.path.join(workdir, f"eval{suffix}.json"), "w") as f:
    json.dump(result, f, indent=2)
  save_png(os.path.join(workdir, f"eval_nearest{suffix}.png"),
           nearest_train_grid(np.asarray(s["images"]), ev.dataset.images("train")))
  lines = [f"# eval of {workdir} (step {result['step']}, n={num}, evaluator test accuracy "
           f"{ev.test_accuracy:.3f})", "", "| metric | samples | real floor |", "|---|---|---|"]
  for k in HEADLINE:
    lines.append(f"| {k} | {_fmt(result['samples'].get(k))} | {_fmt(result['floor'].get(k))} |")
  lines += ["", "fdd ratio to floor: "
            f"{result['samples']['fdd'] / max(result['floor']['fdd'], 1e-9):.2f}",
            "eval_nearest.png: samples (odd columns) beside their nearest training image."]
  report = "\n".join(lines)
  with open(os.path.join(workdir, f"eval{suffix}.md"), "w") as f:
    f.write(report + "\n")
  print(report)
  return result


def compare(workdirs) -> str:
  rows = []
  for wd in workdirs:
    path = os.path.join(wd, "eval.json")
    if not os.path.exists(path):
      raise ConfigError(f"no eval.json in {wd!r}: run `python run.py eval --workdir={wd}` first")
    rows.append((wd, json.load(open(path))))
  head = "| run | step | " + " | ".join(HEADLINE) + " | fdd/floor |"
  lines = [head, "|" + "---|" * (len(HEADLINE) + 3)]
  for wd, r in rows:
    s = r["samples"]
    lines.append(f"| {os.path.basename(os.path.normpath(wd))} | {r['step']} | " +
                 " | ".join(_fmt(s.get(k)) for k in HEADLINE) +
                 f" | {s['fdd'] / max(r['floor']['fdd'], 1e-9):.2f} |")
  f = rows[0][1]["floor"]
  lines.append("| real floor | - | " + " | ".join(_fmt(f.get(k)) for k in HEADLINE) + " | 1.00 |")
  table = "\n".join(lines)
  print(table)
  return table
