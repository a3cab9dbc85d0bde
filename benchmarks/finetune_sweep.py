"""Few-shot fine-tuning sweep: shots x methods x DiffAugment, before vs after.

  python benchmarks/finetune_sweep.py [--shots=10,50,100] [--methods=full,top,freeze_d,lora,adapter,bitfit]
      [--seeds=3] [--workdir=runs/finetune]

Pretrains an unconditional GAN on digits 0-8 once (configs/finetune.py:pretrain, reused when
present), then adapts it to digit 9 with each method, with and without DiffAugment, with
early stopping on the target's validation FDD. Each cell trains --seeds seeds at once as a
population (one vmapped program; every replica keeps its own best checkpoint, the cell stops
when the last replica stops improving); tables give mean +- std over seeds. Every run is evaluated on the target's test
images: FDD (evaluator features), precision/recall, the share of samples the evaluator calls
a 9, and copying (median NN distance of samples to the few training shots, over the same
for the target's test images; << 1 means copying the shots). Writes a JSON file and a
Markdown table under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import time


import jax
import numpy as np

from benchmarks import common
from artjax.tasks import datasets as data_lib
from artjax.image import data as image_data
from artjax.tasks.training import load_evaluator
from configs.gan import get_config as gan_config
from artjax.evaluation import metrics
from artjax.tasks import open_run as load_state
from artjax.tasks.training import train
from configs.finetune import TARGET, get_config


def target_metrics(ev, images, shots_images, test_images):
  f, t = ev.features(images), ev.features(test_images)
  p, r = metrics.precision_recall(t, f, k=3)
  flat = lambda x: np.asarray(x, np.float32).reshape(len(x), -1) / 255.0
  ratio = metrics.nn_distance_ratio(flat(images), flat(shots_images), flat(test_images))["nn_ratio"]
  return {"fdd": float(metrics.frechet_distance(f, t)), "precision": p, "recall": r,
          "target_share": float(np.mean(ev.probs(images).argmax(1) == TARGET)),
          "nn_ratio_to_shots": ratio}


def opt_bytes(state):
  return int(sum(x.nbytes for k in ("g_opt", "d_opt") for x in jax.tree.leaves(state[k])))


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument("--shots", default="10,50,100")
  ap.add_argument("--methods", default="full,top,freeze_d,lora,adapter,bitfit")
  ap.add_argument("--workdir", default=os.path.join(common.ROOT, "runs", "finetune"))
  ap.add_argument("--num", type=int, default=200, help="samples per evaluation")
  ap.add_argument("--seeds", type=int, default=3, help="seeds per cell (a vmapped population)")
  ap.add_argument("--out", default=common.RESULTS)
  args = ap.parse_args(argv)
  t0 = time.time()
  pre_dir = os.path.join(args.workdir, "pretrain")
  if not os.path.exists(os.path.join(pre_dir, "summary.json")):
    print("pretraining on digits 0-8 ...", flush=True)
    train(get_config("pretrain"), pre_dir, quiet=True)
  ev = load_evaluator(gan_config("digits"))
  full_ds = image_data.load_images("digits")
  test_t = image_data.subset(full_ds, (TARGET,)).images("test")
  val_t = image_data.subset(full_ds, (TARGET,)).images("validation")
  pre_task, pre_state = load_state(pre_dir)
  before = target_metrics(ev, np.asarray(pre_task.sample(pre_state, 1, args.num)["images"]),
                          val_t, test_t)
  rows = []
  for shots in [int(s) for s in args.shots.split(",")]:
    shots_images = image_data.subset(full_ds, (TARGET,), shots).images("train")
    floor = target_metrics(ev, val_t, shots_images, test_t)
    for method in args.methods.split(","):
      for aug in ("", "translation,cutout"):
        c = get_config(method)
        c.finetune.init_from = pre_dir
        c.data.shots = shots
        c.gan.diffaugment = aug
        c.train.update(patience=3, sample_every=0, ckpt_every=0)
        wd = os.path.join(args.workdir, f"s{shots}_{method}_{'aug' if aug else 'noaug'}")
        if os.path.exists(wd):
          import shutil
          shutil.rmtree(wd)
        c.train.num_replicas = args.seeds
        t = time.time()
        summary = train(c, wd, quiet=True)
        wall = time.time() - t
        per_seed = []
        for r in range(args.seeds):
          task, state = load_state(wd, replica=r if args.seeds > 1 else None)
          per_seed.append(target_metrics(ev, np.asarray(task.sample(state, 1, args.num)["images"]),
                                         shots_images, test_t))
        after = {k: float(np.mean([m[k] for m in per_seed])) for k in per_seed[0]}
        after_std = {k: float(np.std([m[k] for m in per_seed])) for k in per_seed[0]}
        total = task.num_params["g"] + task.num_params["d"]
        trainable = task.finetune.trainable_count(state)
        row = {"shots": shots, "method": method, "diffaugment": bool(aug), "seeds": args.seeds,
               "trainable_share": trainable / total, "opt_state_bytes": opt_bytes(state),
               "wall_s": round(wall, 1), "stopped_at": summary.get("early_stopped_at", summary["step"]),
               "best_steps": summary.get("best", {}).get("replica_steps",
                                                         [summary.get("best", {}).get("step")]),
               "after": after, "after_std": after_std, "per_seed": per_seed, "floor": floor}
        rows.append(row)
        print(f"shots {shots:3d} {method:8s} aug={'on ' if aug else 'off'} trainable "
              f"{row['trainable_share'] * 100:6.2f}%  opt {row['opt_state_bytes'] / 1024:8.1f} KiB  "
              f"{wall:5.1f}s  FDD {after['fdd']:7.1f}+-{after_std['fdd']:.1f} (floor {floor['fdd']:.1f})  9s "
              f"{after['target_share']:.2f}  P {after['precision']:.2f} R {after['recall']:.2f}  "
              f"copy {after['nn_ratio_to_shots']:.2f}", flush=True)
  result = {"target": TARGET, "before": before, "rows": rows, "total_s": round(time.time() - t0, 1)}
  common.save("finetune_sweep", result)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "finetune_sweep.json"), "w") as f:   # the latest, for the docs
    json.dump(common.recorded(result), f, indent=2)
  lines = [f"Before fine-tuning (pretrained on 0-8): FDD {before['fdd']:.1f}, share of 9s "
           f"{before['target_share']:.2f}, precision {before['precision']:.2f}, recall "
           f"{before['recall']:.2f}.", "",
           f"Each cell: {args.seeds} seeds trained together as a vmapped population; mean (+- std over seeds); "
           "opt. state per seed; wall for all seeds of the cell.", "",
           "| shots | method | DiffAug | trainable | opt. state | wall | FDD (floor) | 9s | precision | recall | copy ratio |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    a = r["after"]
    lines.append(f"| {r['shots']} | {r['method']} | {'on' if r['diffaugment'] else 'off'} | "
                 f"{r['trainable_share'] * 100:.2f}% | {r['opt_state_bytes'] / 1024:.0f} KiB | "
                 f"{r['wall_s']:.0f} s | {a['fdd']:.1f} +- {r['after_std']['fdd']:.1f} ({r['floor']['fdd']:.1f}) | "
                 f"{a['target_share']:.2f} | {a['precision']:.2f} | {a['recall']:.2f} | "
                 f"{a['nn_ratio_to_shots']:.2f} |")
  table = "\n".join(lines)
  with open(os.path.join(args.out, "finetune_sweep.md"), "w") as f:
    f.write(table + "\n")
  print(table)
  print(f"total {result['total_s']} s")


if __name__ == "__main__":
  main()
