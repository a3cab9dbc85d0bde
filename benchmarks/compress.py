"""What compression costs in quality, and what it saves: for the digits GAN and the Music
Transformer, fp32 / bf16 / int8 / int4 weights (`run.py quantize`) and 50% / 80% global
magnitude pruning with and without recovery training (`run.py prune`), each measured
through its exported artifact (`run.py export`): artifact size (raw and gzip -9, where
pruning's zeros show), stored weight bytes, sampling throughput of the deserialized
artifact, and quality -- the digits GAN's FDD / IS / classes of the artifact's samples
beside the real-data floor (held-out validation digits, same code), the Music
Transformer's test NLL per frame.

  python benchmarks/compress.py [--gan=runs/digits] [--music=runs/music] [--work=runs/compress]
                                [--gan_recovery=1000] [--music_recovery=300] [--repeats=5]

Variant workdirs are built under --work once and reused (--fresh rebuilds them).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import time

import jax
import numpy as np

from benchmarks import common
from artjax.engine import compress
from artjax.tasks import open_run, open_stored
from artjax import deploy
from artjax.tasks.training import load_evaluator
from configs.gan import get_config as gan_config
from artjax.evaluation.images import evaluate_images
from artjax.tasks.music_report import test_nll_per_frame


def variants(recovery: int):
  """(name, how) where how = ("source",) | ("quantize", bits) | ("prune", sparsity, steps)."""
  out = [("fp32", ("source",)), ("bf16", ("quantize", 16)), ("int8", ("quantize", 8)),
         ("int4", ("quantize", 4))]
  for s in (0.5, 0.8):
    out.append((f"pruned {s:.0%}", ("prune", s, 0)))
    if recovery:
      out.append((f"pruned {s:.0%} + {recovery} recovery steps", ("prune", s, recovery)))
  return out


def build(source: str, work: str, name: str, how, fresh: bool) -> str:
  if how[0] == "source":
    return source
  wd = os.path.join(work, name.replace(" ", "_").replace("%", "").replace("+", "r"))
  if fresh and os.path.exists(wd):
    shutil.rmtree(wd)
  if not os.path.exists(wd):
    if how[0] == "quantize":
      deploy.quantize_workdir(source, wd, how[1])
    else:
      deploy.prune_workdir(source, wd, how[1], how[2])
  return wd


def _inference(wd: str):
  task, state = open_run(wd)
  return task.inference_state(state)


def artifact(wd: str):
  """(deserialized sampler, sizes) of the workdir's export, built in memory."""
  exps, manifest = deploy.exported(wd)
  blob = exps["sampler"].serialize()
  _, stored, _ = open_stored(wd)
  weights = {k: v for k, v in stored.items() if k != "step"}
  sizes = {"export_bytes": len(blob), "export_gzip_bytes": len(gzip.compress(blob, 9)),
           "weight_bytes": compress.nbytes(weights),
           "kernel_sparsity": round(compress.sparsity_of(_inference(wd)), 4)}
  return jax.export.deserialize(blob), sizes, manifest


def throughput(sampler, rest, repeats: int, batch: int) -> dict:
  """Items per second of the artifact at `batch` (first call compiles; median of repeats)."""
  t = time.perf_counter()
  jax.block_until_ready(sampler.call(np.int32(0), *rest))
  first = time.perf_counter() - t
  times = []
  for r in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(sampler.call(np.int32(r + 1), *rest))
    times.append(time.perf_counter() - t)
  return {"batch": batch, "first_call_s": round(first, 3), "median_s": float(np.median(times)),
          "items_per_s": batch / float(np.median(times))}


def gan_rows(args):
  ev = load_evaluator(gan_config("digits"))
  n = len(ev.dataset.images("validation"))
  labels = np.arange(n, dtype=np.int32) % 10
  rows, floor = [], None
  for name, how in variants(args.gan_recovery):
    wd = build(args.gan, os.path.join(args.work, "digits"), name, how, args.fresh)
    sampler, sizes, _ = artifact(wd)
    images = np.asarray(sampler.call(np.int32(args.seed), labels))
    q = evaluate_images(ev, images, labels)
    floor = q["floor"]
    s = q["samples"]
    rows.append({"model": "digits GAN", "variant": name, "workdir": wd, **sizes,
                 "throughput": throughput(sampler, (np.arange(1000, dtype=np.int32) % 10,),
                                          4 * args.repeats, 1000),
                 "fdd": s["fdd"], "inception_score": s["inception_score"],
                 "classes_present": s["classes_present"], "label_accuracy": s["label_accuracy"]})
    print(json.dumps(rows[-1]), flush=True)
  return rows, {"fdd": floor["fdd"], "inception_score": floor["inception_score"],
                "classes_present": floor["classes_present"], "n": n}


def music_rows(args):
  rows = []
  for name, how in variants(args.music_recovery):
    wd = build(args.music, os.path.join(args.work, "music"), name, how, args.fresh)
    sampler, sizes, manifest = artifact(wd)
    task, state = open_run(wd)
    nll, frames = test_nll_per_frame(task, state)
    rows.append({"model": "Music Transformer", "variant": name, "workdir": wd, **sizes,
                 "throughput": throughput(sampler, (np.arange(8, dtype=np.int32) % 2, np.float32(0)),
                                          args.repeats, 8),
                 "tokens_per_piece": manifest["outputs"][0]["shape"][1],
                 "test_nll_per_frame": nll, "test_frames": frames})
    print(json.dumps(rows[-1]), flush=True)
  return rows


def table(rows, gan_floor) -> str:
  fp = {r["model"]: r for r in rows if r["variant"] == "fp32"}
  lines = ["| model | variant | export MB (x fp32) | gzip MB | weights MB | zeros | items/s | quality |",
           "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    base = fp[r["model"]]
    if r["model"] == "digits GAN":
      quality = (f"FDD {r['fdd']:.1f} ({r['fdd'] / gan_floor['fdd']:.2f}x floor), IS "
                 f"{r['inception_score']:.2f}, {r['classes_present']} classes")
    else:
      quality = (f"{r['test_nll_per_frame']:.3f} nats/frame "
                 f"({r['test_nll_per_frame'] - base['test_nll_per_frame']:+.3f})")
    lines.append(f"| {r['model']} | {r['variant']} | {r['export_bytes'] / 1e6:.2f} "
                 f"({r['export_bytes'] / base['export_bytes']:.2f}x) | "
                 f"{r['export_gzip_bytes'] / 1e6:.2f} | {r['weight_bytes'] / 1e6:.2f} | "
                 f"{r['kernel_sparsity']:.0%} | {r['throughput']['items_per_s']:.3g} | {quality} |")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("--gan", default="runs/digits")
  p.add_argument("--music", default="runs/music")
  p.add_argument("--work", default="runs/compress")
  p.add_argument("--gan_recovery", type=int, default=1000)
  p.add_argument("--music_recovery", type=int, default=300)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--fresh", action="store_true")
  args = p.parse_args(argv)
  rows, floor = [], None
  if args.gan:
    gan, floor = gan_rows(args)
    rows += gan
  if args.music:
    rows += music_rows(args)
  result = {"machine": common.machine(), "args": vars(args), "gan_floor_real_validation": floor,
            "rows": rows}
  common.save("compress", result)
  print(table(rows, floor))
  if floor:
    print(f"digits floor (real validation digits, n={floor['n']}): FDD {floor['fdd']:.2f}, IS "
          f"{floor['inception_score']:.2f}, {floor['classes_present']} classes")


if __name__ == "__main__":
  main()
