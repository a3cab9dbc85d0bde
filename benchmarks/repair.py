"""Image repair on the held-out TEST split (never trained on) of the GAN run's dataset (the
digits by default; colour ones such as the emoji too), per mask kind: RMSE and PSNR on the
missing pixels, the evaluator classifier's accuracy on the repaired images, FDD of the
repaired images against the training set (floor: the real test images) -- for GAN
inversion of a GAN run, the inpainting network of a repair run, and the baselines scikit-image
`inpaint_biharmonic`, the mean-of-train fill and the nearest training image matched on the
visible pixels, all scored by the same code. Plus the time to repair the whole split.

  python benchmarks/repair.py [--gan=runs/digits] [--net=runs/repair] [--kinds=bottom,centre]
      [--grid=docs/img/repair_digits.png]   # 20 bottom- and 20 centre-masked digits, inverted
      [--split=validation --inversion='{"latent_prior": 0.001}']   # choosing settings off test
  python benchmarks/repair.py --gan=runs/dcgan32 --net= --inversion='{"perceptual": 0.1}'
      # the emoji, visible pixels matched in Lite0's features too (artjax.image.perceptual)
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from benchmarks import common
from artjax.tasks import datasets as data_lib
from artjax.tasks import open_run
from artjax.commands import repair
from artjax.tasks.training import load_evaluator
from configs.gan import get_config as gan_config
from artjax.evaluation import metrics
from artjax.image import inversion, masks as masks_lib
from artjax.engine.writers import save_png


def biharmonic(x, missing):
  from skimage.restoration import inpaint_biharmonic
  out = np.stack([inpaint_biharmonic(np.array(im / 255.0), np.array(m), channel_axis=-1)
                  for im, m in zip(x, missing)])
  return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


def mean_fill(train, missing, x):
  mean = np.round(train.astype(np.float64).mean(0)).astype(np.uint8)
  return np.where(missing[..., None], mean[None], x)


def nearest(train, missing, x):
  vis = np.broadcast_to((~missing)[..., None], x.shape).astype(np.float32)
  t = train.reshape(len(train), -1).astype(np.float32)
  out = []
  for im, v in zip(x, vis):
    d = (((t - im.reshape(-1)) * v.reshape(-1)) ** 2).sum(1)
    out.append(train[np.argmin(d)])
  return np.where(missing[..., None], np.stack(out), x)


def score(ev, repaired, x, labels, missing, train_feats):
  m = missing[..., None]
  err = (repaired.astype(np.float64) - x) / 255.0
  rmse = float(np.sqrt((err ** 2 * m).sum() / m.sum()))
  acc = float((ev.probs(repaired).argmax(-1) == labels).mean())
  fdd = float(metrics.frechet_distance(ev.features(repaired), train_feats))
  return {"rmse": rmse, "psnr": float(20 * np.log10(1.0 / max(rmse, 1e-8))), "accuracy": acc, "fdd": fdd}


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("--gan", default="runs/digits")
  p.add_argument("--net", default="runs/repair")
  p.add_argument("--kinds", default=",".join(masks_lib.KINDS))
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--num", type=int, default=0, help="only the first NUM images of the split (0 = all)")
  p.add_argument("--split", default="test", choices=("test", "validation"),
                 help="validation: for choosing settings; the reported figures are test's")
  p.add_argument("--inversion", default="", help='inversion.Settings fields as JSON, e.g. {"latent_prior": 0.001}')
  p.add_argument("--grid", default="", help="PNG: damaged | GAN inversion | original, bottom and centre")
  args = p.parse_args(argv)
  models = {}
  for name, wd in (("GAN inversion", args.gan), ("inpainting network", args.net)):
    if wd and os.path.isdir(wd):
      models[name] = open_run(wd)
  config = models["GAN inversion"][0].config if "GAN inversion" in models else gan_config("digits")
  ds = data_lib.load(config.data)
  ev = load_evaluator(config)
  num = args.num or None
  x, labels, train = ds.images(args.split)[:num], ds.labels(args.split)[:num], ds.images("train")
  try:
    settings = inversion.Settings(**json.loads(args.inversion)) if args.inversion else None
  except (ValueError, TypeError) as e:
    raise SystemExit(f"error: --inversion={args.inversion!r}: {e}") from None
  train_feats = ev.features(train)
  floor = {"accuracy": float((ev.probs(x).argmax(-1) == labels).mean()),
           "fdd": float(metrics.frechet_distance(ev.features(x), train_feats))}
  rows, timing, panels = [], {}, []
  h, w = x.shape[1:3]
  for kind in args.kinds.split(","):
    missing = np.array(masks_lib.of_kind(kind, len(x), h, w, args.seed))
    damaged = np.where(missing[..., None], 0, x).astype(np.uint8)
    results = {"biharmonic (scikit-image)": biharmonic(damaged, missing),
               "mean-of-train fill": mean_fill(train, missing, damaged),
               "nearest training image": nearest(train, missing, damaged)}
    for name, (task, state) in models.items():
      t = time.perf_counter()
      out = repair.repair_arrays(task, state, damaged, missing,
                                 settings if name == "GAN inversion" else None, seed=args.seed)
      timing.setdefault(name, []).append(time.perf_counter() - t)
      results[name] = out["images"]
      assert (out["images"][~missing] == x[~missing]).all()
    if args.grid and "GAN inversion" in results and kind in ("bottom", "centre"):
      panels.append((damaged[:20], missing[:20], results["GAN inversion"][:20], x[:20]))
    for method, rep in results.items():
      rows.append({"mask": kind, "method": method, **score(ev, rep, x, labels, missing, train_feats)})
      print(json.dumps(rows[-1]), flush=True)
  result = {"machine": common.machine(), "split": args.split, "n_test": int(len(x)), "floor_real_test": floor,
            "seconds_per_split": {k: {"first_with_compile": v[0], "median_after": float(np.median(v[1:])) if len(v) > 1 else None}
                                  for k, v in timing.items()},
            "rows": rows, "args": vars(args)}
  path = common.save("repair", result)
  if panels:
    save_png(args.grid, repair.panel_grid(*(np.concatenate(a) for a in zip(*panels, strict=True))))
    print(f"wrote {args.grid}")
  print("| mask | method | hole RMSE | PSNR dB | evaluator accuracy | FDD vs train |")
  print("|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['mask']} | {r['method']} | {r['rmse']:.3f} | {r['psnr']:.1f} | {r['accuracy']:.1%} | {r['fdd']:.2f} |")
  print(f"floor (real {args.split} images): accuracy {floor['accuracy']:.1%}, FDD {floor['fdd']:.2f}; "
        f"seconds per {len(x)} images: {json.dumps(result['seconds_per_split'])}")
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
