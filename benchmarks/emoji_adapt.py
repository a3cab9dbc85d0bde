"""Few-shot style adaptation on emoji (issue #29, point 1): generators pretrained on Google's
emoji, adapted to Twitter's from K drawings, judged against held-out Twitter test drawings.

For each run: samples (as many as the Twitter test split, classes drawn uniformly) scored
in the emoji evaluator's features (both styles, trained on categories) -- FID to the Twitter
test drawings (lower = closer to the new style) and to the Google test drawings (how far it
left the old one) -- the style evaluator's P(twitter), the categories present, and copying:
the pixel distance of each sample to its nearest of the K shots against that of held-out
Twitter drawings (a ratio well under 1 = copies of the shots). Floors by the same code: real
Twitter validation drawings and real Google test drawings in place of the samples.

  python -m benchmarks.emoji_adapt --runs=runs/sg_google,runs/ft_lora50 [--seed=0]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from benchmarks import common
from artjax.engine import workdir as workdir_lib
from artjax.evaluation import metrics
from artjax.image import data as image_data
from artjax.image.data.emoji import CATEGORIES
from artjax.tasks import datasets as data_lib
from artjax.tasks import evaluator as evaluator_lib
from artjax.tasks import open_run, translate_report
from artjax.tasks.training import ensure_trained
from configs.translate import get_config as judge_config


def _flat(x):
  return np.asarray(x, np.float32).reshape(len(x), -1) / 255.0


def judges():
  """(judge functions, the emoji dataset at 32 px): the category and style evaluators."""
  c = judge_config("emoji32")
  ensure_trained(*evaluator_lib.requirement(c))
  ensure_trained(*evaluator_lib.requirement(translate_report.style_config(c)))
  features, p_twitter, predict = translate_report.judges(c)
  return (features, p_twitter, predict), data_lib.load(c.data)


def shots_of(config):
  """The K training drawings a few-shot run was adapted on (None for a full-data run)."""
  if not config.data.shots:
    return None
  ds = data_lib.load(config.data)
  seed = config.data.shots_seed if "shots_seed" in config.data else -1
  return image_data.subset(ds, tuple(config.data.classes), config.data.shots, seed).images("train")


def scores(images, fns, refs, shots) -> dict:
  features, p_twitter, predict = fns
  f = features(images)
  k = len(CATEGORIES)
  shares = metrics.class_shares(np.eye(k)[predict(images)], k)
  out = {"fid_twitter_test": float(metrics.frechet_distance(f, refs["twitter_test"])),
         "fid_google_test": float(metrics.frechet_distance(f, refs["google_test"])),
         "p_twitter": float(np.mean(p_twitter(images))),
         "categories_present": int(np.sum(shares >= 0.2 / k))}
  if shots is not None:
    d = metrics.nn_distances(_flat(images), _flat(shots))
    out["nn_to_shots_median"] = float(np.median(d))
  return out


def evaluate_run(workdir, fns, refs, real, n, seed, best=True) -> dict:
  task, state = open_run(workdir, best=best and workdir_lib.best_info(workdir) is not None)
  task, state = task.unwrap(state)
  if tuple(task.image_shape) != real["twitter_test"].shape[1:]:
    raise SystemExit(f"error: {workdir} makes {task.image_shape} images; the judges read "
                     f"{real['twitter_test'].shape[1:]} (emoji at 32 px)")
  s = jax.device_get(jax.jit(task.sample, static_argnums=2)(state, seed, n))
  shots = shots_of(task.config)
  out = {"run": workdir, "step": int(state["step"]), "method": task.config.finetune.method,
         "shots": int(task.config.data.shots), "samples": scores(np.asarray(s["images"]), fns, refs, shots)}
  if shots is not None:
    held = metrics.nn_distances(_flat(real["twitter_test"]), _flat(shots))
    out["held_out_nn_to_shots_median"] = float(np.median(held))
    out["copy_ratio"] = out["samples"]["nn_to_shots_median"] / out["held_out_nn_to_shots_median"]
  return out


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("--runs", required=True, help="Comma-separated workdirs (pretrained, adapted, scratch).")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--best", action=argparse.BooleanOptionalAction, default=True,
                 help="Judge each run's best checkpoint by its validation FDD (against Twitter "
                      "validation drawings, never the test split); --no-best: the latest.")
  args = p.parse_args(argv)
  fns, ds = judges()
  style = lambda split, st: ds.images(split)[ds.meta[split]["style"] == st]
  real = {"twitter_test": style("test", 1), "google_test": style("test", 0),
          "twitter_val": style("validation", 1)}
  refs = {k: fns[0](v) for k, v in real.items() if k.endswith("test")}
  n = len(real["twitter_test"])
  rows = [{"run": "real Twitter validation drawings (floor)",
           "samples": scores(real["twitter_val"], fns, refs, None)},
          {"run": "real Google validation drawings", "samples": scores(style("validation", 0), fns, refs, None)}]
  rows += [evaluate_run(wd, fns, refs, real, n, args.seed, args.best) for wd in args.runs.split(",")]
  path = common.save("emoji_adapt", common.recorded({"args": vars(args), "n": n, "rows": rows}))
  print(f"n = {n} samples per run (the Twitter test split); {path}")
  print("| run | method | K | FID to Twitter test | FID to Google test | P(twitter) | categories | "
        "copy ratio (nn to shots / held-out's) |")
  print("|---|---|---|---|---|---|---|---|")
  for r in rows:
    s = r["samples"]
    print(f"| {r['run']} | {r.get('method', '-')} | {r.get('shots', '-')} | "
          f"{s['fid_twitter_test']:.2f} | {s['fid_google_test']:.2f} | {s['p_twitter']:.3f} | "
          f"{s['categories_present']}/9 | " + (f"{r['copy_ratio']:.2f} |" if "copy_ratio" in r else "- |"))


if __name__ == "__main__":
  main()
