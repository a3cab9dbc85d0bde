"""`run.py eval` of an image generator: its samples' quality, coverage and copying, each
beside the real-data floor computed by the same code (artjax.evaluation.images)."""

from __future__ import annotations

import json
import os

import jax
import numpy as np

from artjax.engine.writers import image_grid, save_png
from artjax.evaluation import metrics
from artjax.evaluation.images import evaluate_images, heldout_distances, standard_metrics
from artjax.music import metrics as music_metrics
from artjax.tasks.evaluator import Evaluator, ImageNetFeatures, InceptionFeatures

HEADLINE = ("fdd", "kdd_x1000", "inception_score", "precision", "recall", "density", "coverage",
            "classes_present", "label_accuracy", "nn_ratio", "ct")


def fmt(v):
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


def _inception_lines(result) -> list:
  lines = ["", "Inception-v3 (FID network) features:", "",
           "| metric | samples vs train | floor vs train | samples vs test | floor vs test |",
           "|---|---|---|---|---|"]
  s, f = result["samples"], result["floor"]
  for k in ("fid", "kid_x1000", "precision", "recall"):
    lines.append(f"| {k} | {fmt(s['vs_train'][k])} | {fmt(f['vs_train'][k])} | "
                 f"{fmt(s['vs_test'][k])} | {fmt(f['vs_test'][k])} |")
  return lines


def _lite0_lines(result) -> list:
  s, f = result["samples"], result["floor"]
  ratio = s["fd"] / f["fd"] if f["fd"] > 1e-6 else float("nan")
  return ["", "ImageNet features (EfficientNet-Lite0 pooled, 128 px; not FID: a different "
          "network), against the test split:", "", "| metric | samples | real floor |",
          "|---|---|---|", f"| fd | {fmt(s['fd'])} | {fmt(f['fd'])} |",
          f"| kd_x1000 | {fmt(s['kd_x1000'])} | {fmt(f['kd_x1000'])} |", "",
          f"lite0 fd ratio to floor: {ratio:.2f}"]


def _roll_music(dataset, images, labels) -> dict:
  """A piano-roll GAN's samples in their asked mode and their exact copies, beside the real
  validation segments in their labelled mode (artjax.music.metrics)."""
  roll = lambda x: np.asarray(x)[..., 0] >= 128
  train = roll(dataset.images("train"))
  real, real_modes = roll(dataset.images("validation")), dataset.labels("validation")
  return {"samples": music_metrics.roll_mode_following(roll(images), labels, train,
                                                       dataset.labels("train")),
          "floor": music_metrics.roll_mode_following(real, real_modes, train,
                                                     dataset.labels("train")),
          "exact_copies": {"samples": music_metrics.exact_copy_share(roll(images), train),
                           "floor": music_metrics.exact_copy_share(real, train)}}


def _roll_lines(m) -> list:
  lines = ["", "Mode: the share of samples asked a mode that are heard in it (music21's key "
           "analysis / chord qualities), beside held-out segments in their labelled mode:", "",
           "| asked | samples: music21 | samples: chords | real: music21 | real: chords |",
           "|---|---|---|---|---|"]
  for mode in ("major", "minor"):
    a, b = m["samples"].get(mode), m["floor"].get(mode)
    if a and b:
      lines.append(f"| {mode} | {a['music21']:.2f} | {a['chords']:.2f} | {b['music21']:.2f} | "
                   f"{b['chords']:.2f} |")
  c = m["exact_copies"]
  lines += ["", f"Exact copies of a training segment: samples {c['samples']:.3f}, held-out "
            f"segments {c['floor']:.3f}."]
  return lines


def _judged_classes(ev, data_cfg):
  """The evaluator judging against the run's `data.classes` only (every split restricted:
  floor, train and held-out), when the run trained on some classes of the judged dataset."""
  from artjax.image import data as image_data
  classes = tuple(data_cfg.get("classes", ()) or ())
  if classes and ev.dataset.name == data_cfg.name:
    ev.dataset = image_data.subset(ev.dataset, classes)
  return ev


def report_images(task, state, num: int | None, seed: int, workdir: str, suffix: str = "",
                  checkpoint: str = "latest", inception: str | None = None, *,
                  pictures: bool = True, rolls: bool = False) -> dict:
  """eval{suffix}.json / .md and eval_nearest{suffix}.png of an image generator's samples:
  every metric beside its real-data floor, in the dataset's evaluator's features (trained
  first: artjax.tasks.training.ensure_trained) and, given `inception` (the FID weights file),
  FID/KID/precision/recall in Inception-v3 features against train and test. `pictures`: also
  in ImageNet (Lite0) features; `rolls`: piano rolls, with each class's musical measures."""
  inception_net = InceptionFeatures(inception) if inception else None  # refuse before sampling
  ev = _judged_classes(Evaluator(task.config), task.config.data)
  floor = ev.dataset.images("validation")
  num = num or len(floor)
  s = jax.device_get(jax.jit(task.sample, static_argnums=2)(state, seed, num))
  result = evaluate_images(ev, np.asarray(s["images"]), s["labels"] if "labels" in s else None)
  if inception_net is not None:
    result["inception"] = standard_metrics(inception_net, np.asarray(s["images"]),
                                           ev.dataset.images("train"), ev.dataset.images("test"),
                                           floor[:num])
  if pictures:   # ImageNet features too
    k = min(num, len(floor))   # as many samples as real held-out images: comparable figures
    result["lite0"] = heldout_distances(ImageNetFeatures(), np.asarray(s["images"])[:k],
                                        floor[:k], ev.dataset.images("test"))
  result.update(workdir=os.path.abspath(workdir), step=int(state["step"]), seed=seed,
                checkpoint=checkpoint)
  save_png(os.path.join(workdir, f"eval_nearest{suffix}.png"),
           nearest_train_grid(np.asarray(s["images"]), ev.dataset.images("train")))
  lines = [f"# eval of {workdir} (step {result['step']}, n={num}, evaluator test accuracy "
           f"{ev.test_accuracy:.3f} on {ev.info['dataset']})", "",
           "| metric | samples | real floor |", "|---|---|---|"]
  for k in HEADLINE:
    lines.append(f"| {k} | {fmt(result['samples'].get(k))} | {fmt(result['floor'].get(k))} |")
  fl = result["floor"]["fdd"]
  lines += ["", "fdd ratio to floor: " + (f"{result['samples']['fdd'] / fl:.2f}" if fl > 1e-3
                                          else "- (the floor is 0: these features cannot judge)"),
            "eval_nearest.png: samples (odd columns) beside their nearest training image."]
  if "lite0" in result:
    lines += _lite0_lines(result["lite0"])
  if "inception" in result:
    lines += _inception_lines(result["inception"])
  if rolls and "labels" in s:
    result["music"] = _roll_music(ev.dataset, np.asarray(s["images"]), np.asarray(s["labels"]))
    lines += _roll_lines(result["music"])
  with open(os.path.join(workdir, f"eval{suffix}.json"), "w") as f:   # the mode block included
    json.dump(result, f, indent=2)
  report = "\n".join(lines)
  with open(os.path.join(workdir, f"eval{suffix}.md"), "w") as f:
    f.write(report + "\n")
  print(report)
  return result
