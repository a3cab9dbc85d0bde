"""Every style method against the true drawings (issue #29, point 3). The emoji test split holds
the same subjects drawn by Google's and Twitter's artists: each method turns the Google
drawing into "Twitter style", and is scored against Twitter's true drawing of that subject
(artjax.evaluation.images.paired_scores: pixel L1, SSIM, the emoji evaluator's feature
distance, the style evaluator's P(twitter), the category evaluator still naming the subject).

Methods: the Google drawing itself (identity); its colour histogram matched to K Twitter
training drawings; paired translation (a configs/translate.py run); optimisation style
transfer (artjax.image.style, as `run.py stylize`) with one Twitter drawing as the style, and
with the mean feature statistics of the K drawings; the feed-forward style network of a
configs/style.py run; projection of the Google drawing into a generator adapted to Twitter
(a configs/finetune.py:emoji_twitter_* run, `run.py project`'s projector). Optimisations run
at 64 px (the 32 px drawing upsampled, result box-downsampled), all images of a chunk in one
compiled program.

  python -m benchmarks.style_pairs --write_inputs=runs/style_twitter_inputs   # content + style PNGs
  python run.py train --config=configs/style.py --workdir=runs/style_twitter \
      --config.data.train="()" --config.data.folder=runs/style_twitter_inputs/content \
      --config.data.photo_size=64 --config.data.crop=64 --config.style.size=64 \
      --config.style.image=runs/style_twitter_inputs/style.png
  python -m benchmarks.style_pairs --translator=runs/translate [--style_net=runs/style_twitter]
      [--adapted=runs/ft_lora50] [--num=48] [--shots=8] [--strip=docs/img/style_pairs.png]

The test pairs scored are a seeded draw (numpy PCG64, seed 0) of `--num` from the split,
kept in key order; the K drawings are a seeded draw (seed 0) of the Twitter training drawings;
the single style image is Twitter's grinning face (`--style_key`, a training drawing).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from benchmarks.emoji_adapt import judges
from artjax.engine.writers import image_grid, save_png
from artjax.image import projection, style
from artjax.image.data import emoji_data
from artjax.image.networks import feature_network
from artjax.tasks import evaluator as evaluator_lib
from artjax.tasks import open_run, translate_report
from artjax.tasks.training import ensure_trained
from configs.translate import get_config as judge_config

CHUNK = 16
SIDE = 64


def _resize(x, side):
  return jax.image.resize(x, (x.shape[0], side, side, x.shape[-1]), "linear", antialias=True)


def _u8(x):
  return np.asarray(jnp.clip(jnp.round(x * 255.0), 0, 255).astype(jnp.uint8))


def _chunks(fn, images):
  return np.concatenate([fn(images[i:i + CHUNK]) for i in range(0, len(images), CHUNK)])


def stylized(src, styles, steps=(200, 100)):
  """Gatys-style optimisation of each source drawing (64 px, two scales) towards the mean
  feature statistics of `styles` (uint8 [K, 32, 32, 3]); uint8 at 32 px."""
  net, params = feature_network("random", 0)
  params = jax.tree.map(jnp.asarray, params)
  s = style.Settings(steps=steps)
  sides = (SIDE // 2, SIDE)
  st = jnp.asarray(styles, jnp.float32) / 255.0
  style_sets = [[_resize(st[k:k + 1], side) for k in range(len(st))] for side in sides]
  mix = jnp.full((len(st),), 1.0 / len(st))

  def one(p, sets, c32, c64):
    return style.stylize(net, p, s, [c32[None], c64[None]], sets, mix, None, None)[0][0]

  # weights and styles are arguments, not constants: XLA would fold their features at compile time
  fn = jax.jit(jax.vmap(one, in_axes=(None, None, 0, 0)))

  def run(x):
    x = jnp.asarray(x, jnp.float32) / 255.0
    return _u8(_resize(fn(params, style_sets, _resize(x, sides[0]), _resize(x, sides[1])), 32))
  return _chunks(run, src)


def style_network(workdir, src):
  task, state = open_run(workdir)
  fn = jax.jit(lambda x: task.transform(state, _resize(jnp.asarray(x, jnp.float32) / 255.0, SIDE)))
  return _chunks(lambda x: _u8(_resize(fn(x), 32)), src)


def projected(workdir, src, seed=0):
  """Each Google drawing projected into the adapted generator (its reconstruction)."""
  task, state = open_run(workdir)
  task, state = task.unwrap(state)
  ensure_trained(*evaluator_lib.requirement(task.config))
  feats = evaluator_lib.Evaluator(task.config).pixel_features()
  fn = jax.jit(lambda x, k: task.project(state, x, k, projection.Settings(), feats)["images"])
  return np.concatenate([np.asarray(fn(jnp.asarray(src[i:i + 64]), jax.random.key(seed + i)))
                         for i in range(0, len(src), 64)])


def methods_of(args, src, one, shots):
  out = {"Google drawing (identity)": src,
         f"colour histogram matched to {len(shots)} Twitter drawings":
             translate_report.histogram_baseline(src, shots)}
  if args.translator:
    task, state = open_run(args.translator)
    out["paired translation (pix2pix)"] = translate_report.translate_arrays(task.unwrapped, state, src)
  out["optimisation style transfer, 1 Twitter drawing"] = stylized(src, one[None])
  out[f"optimisation style transfer, mean of {len(shots)} drawings"] = stylized(src, shots)
  if args.style_net:
    out["feed-forward style network"] = style_network(args.style_net, src)
  if args.adapted:
    out["projection into the Twitter-adapted generator"] = projected(args.adapted, src)
  return out


def write_inputs(folder, contents, style_image):
  import os
  from PIL import Image
  os.makedirs(os.path.join(folder, "content"), exist_ok=True)
  for i, im in enumerate(contents):
    Image.fromarray(im).save(os.path.join(folder, "content", f"{i:05d}.png"))
  Image.fromarray(style_image).save(os.path.join(folder, "style.png"))
  print(f"wrote {len(contents)} content drawings and the style drawing to {folder}")


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("--translator", default="", help="A configs/translate.py run.")
  p.add_argument("--style_net", default="", help="A configs/style.py run (a Twitter style).")
  p.add_argument("--adapted", default="", help="A StyleGAN-class run adapted to Twitter.")
  p.add_argument("--num", type=int, default=64, help="Test pairs scored (the first, by key).")
  p.add_argument("--shots", type=int, default=8, help="K Twitter training drawings (seed 0).")
  p.add_argument("--strip", default="", help="PNG: Google | each method | true Twitter.")
  p.add_argument("--style_key", default="1f600.png", help="The single style drawing (train split).")
  p.add_argument("--write_inputs", default="", help="Only write DIR/content/*.png (the Google "
                 "training drawings) and DIR/style.png (the single style drawing) for a style network.")
  args = p.parse_args(argv)
  _, ds = judges()
  pairs = emoji_data.pairs(ds, "test", "google", "twitter")
  pick = np.sort(np.random.default_rng(0).permutation(len(pairs[0]))[:args.num])
  src, dst, keys, cats = (a[pick] for a in pairs)
  train_google, train_twitter, train_keys, _ = emoji_data.pairs(ds, "train", "google", "twitter")
  shots = train_twitter[np.random.default_rng(0).permutation(len(train_twitter))[:args.shots]]
  if args.style_key not in set(train_keys):
    raise SystemExit(f"error: --style_key={args.style_key} is not a training subject")
  one = train_twitter[list(train_keys).index(args.style_key)]
  if args.write_inputs:
    return write_inputs(args.write_inputs, train_google, one)
  methods = methods_of(args, src, one, shots)
  methods["true Twitter drawing"] = dst
  scores = translate_report.score_methods(judge_config("emoji32"), methods, dst, cats)
  path = common.save("style_pairs", common.recorded({"args": vars(args), "n": int(len(src)),
                                                     "keys": [str(k) for k in keys], "methods": scores}))
  if args.strip:
    n = min(12, len(src))
    rows = np.stack([m[:n] for m in methods.values()], 1).reshape((-1,) + src.shape[1:])
    save_png(args.strip, image_grid(rows, ncol=len(methods), scale=2))
  print(f"n = {len(src)} held-out test pairs; {path}")
  print("| method | L1 (lower) | SSIM (higher) | feature dist (lower) | P(twitter) | category kept |")
  print("|---|---|---|---|---|---|")
  for name, s in scores.items():
    print(f"| {name} | {s['l1']:.4f} | {s['ssim']:.3f} | {s['feature_dist']:.4f} | "
          f"{s['style_prob']:.3f} | {s['category_kept']:.3f} |")


if __name__ == "__main__":
  main()
