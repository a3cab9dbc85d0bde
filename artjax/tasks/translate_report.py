"""`run.py eval` of a translator: on the held-out test pairs, the translation scored against
the true drawing beside the baselines scored by the same code (the source picture itself,
and its colour histogram matched to the target style's training drawings), plus the style
and category evaluators' verdicts; eval.json / eval.md and a strip eval_strip.png
(source | histogram matched | translation | true target)."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from artjax.engine.writers import image_grid, save_png
from artjax.evaluation.images import paired_scores
from artjax.image.data.emoji import STYLES
from artjax.image.metrics import histogram_matched
from artjax.tasks.evaluator import Evaluator

CHUNK = 256
STRIP_ROWS = 16


def translate_arrays(task, state, images) -> np.ndarray:
  """uint8 [N, H, W, C] -> the translations, in chunks of one compiled function."""
  fn = jax.jit(task.translate)
  return np.concatenate([np.asarray(fn(state, jnp.asarray(images[i:i + CHUNK]))["images"])
                         for i in range(0, len(images), CHUNK)])


def histogram_baseline(source, reference) -> np.ndarray:
  """Each source picture's colour histogram matched to the pooled pixels of `reference`."""
  pooled = np.asarray(reference, np.float32).reshape(1, -1, reference.shape[-1]) / 255.0
  return np.stack([np.round(histogram_matched(np.asarray(s, np.float32) / 255.0, pooled) * 255)
                   .astype(np.uint8) for s in source])


def style_config(task_config):
  """`task_config` reading `emoji:style` (both styles labelled by style): the config whose
  evaluator says "is it Twitter?"; None for a paired folder, whose own evaluator (labelled
  by subfolder) already says "is it TARGET?"."""
  if task_config.data.name != "emoji":
    return None
  c = task_config.copy_and_resolve_references()
  c.data.name = "emoji:style"
  return c


def judges(task_config):
  """(features, probability of the target style, category prediction or None): functions of
  uint8 images by the dataset's evaluator and the style evaluator (both trained before)."""
  ev, style = Evaluator(task_config), style_config(task_config)
  if style is None:   # a paired folder: its classes are the styles
    target = list(ev.dataset.class_names).index(task_config.translate.target)
    return ev.features, lambda x: ev.probs(x)[:, target], None
  style_ev = Evaluator(style)
  target = STYLES.index(task_config.translate.target)
  return (ev.features, lambda x: style_ev.probs(x)[:, target],
          lambda x: np.argmax(ev.probs(x), 1))


def score_methods(task_config, methods: dict, truth, categories) -> dict:
  """{method: artjax.evaluation.images.paired_scores} of each method's pictures."""
  features, style_prob, predict = judges(task_config)
  return {name: paired_scores(x, truth, features, style_prob, categories, predict)
          for name, x in methods.items()}


def report(task, state, num, workdir, suffix="", checkpoint="latest") -> dict:
  src, dst, keys, cats = task.pairs("test")
  if num:
    src, dst, keys, cats = src[:num], dst[:num], keys[:num], cats[:num]
  methods = {"source picture (identity)": src,
             "colour histogram matched": histogram_baseline(src, task.pairs("train")[1]),
             "translation": translate_arrays(task, state, src),
             "true target drawing": dst}
  scores = score_methods(task.config, methods, dst, cats)
  t = task.config.translate
  result = {"workdir": os.path.abspath(workdir), "step": int(state["step"]),
            "checkpoint": checkpoint, "source": t.source, "target": t.target,
            "n": int(len(src)), "methods": scores}
  with open(os.path.join(workdir, f"eval{suffix}.json"), "w") as f:
    json.dump(result, f, indent=2)
  pick = np.linspace(0, len(src) - 1, min(STRIP_ROWS, len(src))).astype(int)   # across categories
  rows = np.stack([m[pick] for m in methods.values()], 1).reshape((-1,) + src.shape[1:])
  save_png(os.path.join(workdir, f"eval_strip{suffix}.png"),
           image_grid(rows, ncol=2 * len(methods), scale=max(1, 64 // src.shape[1])))
  text = "\n".join(table_lines(result, workdir))
  with open(os.path.join(workdir, f"eval{suffix}.md"), "w") as f:
    f.write(text + "\n")
  print(text)
  return result


def table_lines(result, workdir) -> list:
  lines = [f"# eval of {workdir} (step {result['step']}): {result['source']} -> "
           f"{result['target']} on {result['n']} held-out test pairs", "",
           "| method | L1 (lower) | SSIM (higher) | feature dist (lower) | "
           f"P({result['target']}) | category kept |", "|---|---|---|---|---|---|"]
  for name, s in result["methods"].items():
    kept = f"{s['category_kept']:.3f}" if "category_kept" in s else "-"
    lines.append(f"| {name} | {s['l1']:.4f} | {s['ssim']:.3f} | {s['feature_dist']:.4f} | "
                 f"{s['style_prob']:.3f} | {kept} |")
  lines += ["", "All against the true target drawing of the same subject; the last row is "
            "the true drawing itself (its style and category figures are the evaluators' floor).",
            "eval_strip.png: source | histogram matched | translation | true target."]
  return lines
