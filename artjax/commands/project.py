"""`run.py project`: find the w (and noise maps) that make a trained StyleGAN-class generator
draw each given picture (artjax.image.projection, one jitted scan per batch); writes the
reconstructions and latents (.npz), a PNG strip (target | reconstruction) and a per-image
table of pixel PSNR, evaluator-feature distance and the LPIPS-style distance in pretrained
ImageNet features (artjax.image.perceptual), each beside the mean-w image's (the start). The
loss (`--features`) is pixels only (default), or pixels plus the evaluator's or Lite0's
perceptual loss."""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from artjax import ConfigError
from artjax.commands.options import check_outputs, need
from artjax.engine.writers import image_grid, save_png
from artjax.evaluation.metrics import psnr
from artjax.image import io as image_io
from artjax.image import projection
from artjax.tasks import open_run

SUMMARY = "project real pictures into a StyleGAN-class generator (w + noise per image)"
USAGE = ("project --workdir=DIR --images=DIR|FILE.npz|FILE.png|split:test --out=OUT.npz "
         "[--steps=N] [--num=N]")
MAX_IMAGES = 4096
FEATURES = ("pixels", "evaluator", "lite0")
BATCH = 64


def split_targets(task, spec: str, num: int) -> np.ndarray:
  """The first `num` images of a split of the run's own dataset (`split:test`)."""
  from artjax.tasks import datasets as data_lib
  ds = data_lib.load(task.config.data)
  name = spec.split(":", 1)[1]
  if name not in ds.splits:
    raise ConfigError(f"--images={spec}: the dataset has splits {sorted(ds.splits)}")
  return ds.images(name)[:num]


def read_targets(path: str, shape) -> np.ndarray:
  """uint8 [N, H, W, C] at the run's shape from a folder of pictures, one picture or an .npz."""
  if path.endswith(".npz") and os.path.isfile(path):
    try:
      with np.load(path) as z:
        x = np.asarray(z["images"]) if "images" in z.files else None
    except Exception as e:
      raise ConfigError(f"--images: {path} is not a readable .npz ({' '.join(str(e).split())})") from e
    if x is None or x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != tuple(shape):
      raise ConfigError(f"--images: {path} needs 'images' uint8 {[None, *shape]} (the run's shape)")
    return x
  files = image_io.picture_files(path, "--images", MAX_IMAGES)
  return np.stack([image_io.fit_square(image_io.read_image(f, "--images"), shape) for f in files])


def _settings(steps, lr):
  if steps is not None and not 1 <= steps <= 100_000:
    raise ConfigError(f"--steps must be in 1..100000, got {steps}")
  if lr is not None and not (np.isfinite(lr) and lr > 0):
    raise ConfigError(f"--lr must be a positive number, got {lr}")
  d = projection.Settings()
  return dataclasses.replace(d, steps=steps or d.steps, lr=lr or d.lr)


def _evaluator_features(task):
  from artjax.tasks.evaluator import Evaluator
  from artjax.tasks.training import ensure_trained
  for config, wd in task.requirements(True):
    ensure_trained(config, wd)
  return Evaluator(task.config)


def _loss_features(kind: str, ev):
  """The perceptual loss's feature function of [-1, 1] images, or None (pixels only)."""
  if kind == "lite0":
    from artjax.image import perceptual
    return perceptual.features("lite0")
  return ev.pixel_features() if kind == "evaluator" else None


def project_files(workdir, images, out, *, steps=None, lr=None, seed=0, features="pixels",
                  num=16):
  if not out or not out.endswith(".npz"):
    raise ConfigError(f"--out must name an .npz file, got {out!r}")
  check_outputs({"--out": out, "its strip": os.path.splitext(out)[0] + ".png"}, {"--images": images})
  settings = _settings(steps, lr)
  if features not in FEATURES:
    raise ConfigError(f"--features={features!r}: choose one of {', '.join(FEATURES)}")
  task, state = open_run(workdir)
  task = task.unwrapped
  if not task.projects_images:
    raise ConfigError(f"{workdir!r} is a {type(task).__name__} run: projection needs a "
                      "StyleGAN-class run (configs/stylegan.py)")
  if not 1 <= num <= MAX_IMAGES:
    raise ConfigError(f"--num must be in 1..{MAX_IMAGES}, got {num}")
  targets = (split_targets(task, images, num) if images.startswith("split:")
             else read_targets(images, tuple(task.image_shape)))
  ev = _evaluator_features(task)       # scores every projection, whatever its loss
  feats = _loss_features(features, ev)
  fn = jax.jit(lambda st, x, k: task.project(st, x, k, settings, feats))
  parts = []
  for i in range(0, len(targets), BATCH):
    key = jax.random.fold_in(jax.random.key(seed), i)
    parts.append(jax.device_get(fn(state, jnp.asarray(targets[i:i + BATCH]), key)))
  result = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "mean_image"}
  mean = np.broadcast_to(parts[0]["mean_image"], targets.shape)
  result.update(targets=targets, **_scores(ev, targets, result["images"], mean),
                **_lite0_scores(targets, result["images"], mean))
  _write(out, result)
  return result


def _scores(ev, targets, recon, mean):
  ft, fr, fm = (ev.features(a) for a in (targets, recon, np.ascontiguousarray(mean)))
  return {"psnr": psnr(targets, recon), "psnr_mean_image": psnr(targets, mean),
          "feature_dist": np.mean((fr - ft) ** 2, -1), "feature_dist_mean_image": np.mean((fm - ft) ** 2, -1)}


def _lite0_scores(targets, recon, mean):
  """The LPIPS-style distance in ImageNet features (artjax.image.perceptual) of each
  reconstruction and of the mean-w image to its target."""
  from artjax.image import perceptual
  f = perceptual.features("lite0")
  dist = jax.jit(lambda a, b: jnp.mean((f(a / 127.5 - 1.0) - f(b / 127.5 - 1.0)) ** 2, -1))

  def batched(a):
    return np.concatenate([np.asarray(dist(jnp.asarray(a[i:i + BATCH], jnp.float32),
                                           jnp.asarray(targets[i:i + BATCH], jnp.float32)))
                           for i in range(0, len(targets), BATCH)])
  return {"lite0_dist": batched(recon), "lite0_dist_mean_image": batched(np.ascontiguousarray(mean))}


def _write(out, result):
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  tmp = out[:-4] + ".partial.npz"
  np.savez(tmp, **result)
  os.replace(tmp, out)
  strip = os.path.splitext(out)[0] + ".png"
  t, r = result["targets"], result["images"]
  n = min(len(t), 32)
  pairs = np.stack([t[:n], r[:n]], 1).reshape((-1,) + t.shape[1:])
  save_png(strip, image_grid(pairs, ncol=2 * min(n, 8), scale=max(1, 64 // t.shape[1])))
  lines = ["| image | PSNR dB | mean-w PSNR | feature dist | mean-w feature dist | Lite0 dist | "
           "mean-w Lite0 dist |", "|---|---|---|---|---|---|---|"]
  cols = [(result[k], ".2f" if k.startswith("psnr") else ".4f") for k in
          ("psnr", "psnr_mean_image", "feature_dist", "feature_dist_mean_image", "lite0_dist",
           "lite0_dist_mean_image")]
  for i in range(len(t)):
    lines.append(f"| {i} | " + " | ".join(format(v[i], f) for v, f in cols) + " |")
  lines.append("| median | " + " | ".join(format(np.median(v), f) for v, f in cols) + " |")
  print("\n".join(lines))
  print(f"projected {len(t)} image(s) -> {out} (reconstructions 'images', latents 'w'); "
        f"strip target | reconstruction -> {strip}")


def define(fv, argv):
  d = dict(flag_values=fv)
  flags.DEFINE_string("workdir", None, "A trained StyleGAN-class run (configs/stylegan.py).", **d)
  flags.DEFINE_string("images", None, "A folder of pictures (recursive; PNG/JPEG/WebP/BMP/GIF, "
                      "centre-cropped and resized to the run's resolution), one picture, or an "
                      ".npz with 'images' uint8 [N, H, W, C] at the run's shape, or split:NAME: the "
                      "first --num images of that split of the run's dataset (held-out: test).", **d)
  flags.DEFINE_integer("num", 16, "With --images=split:NAME: how many images.", **d)
  flags.DEFINE_string("out", None, "OUT.npz: reconstructions, w, targets, scores; OUT.png: "
                      "the strip target | reconstruction.", **d)
  flags.DEFINE_integer("steps", None, "Adam steps (default: artjax.image.projection.Settings).", **d)
  flags.DEFINE_float("lr", None, "Peak learning rate (default 0.1).", **d)
  flags.DEFINE_integer("seed", 0, "Random seed (noise maps, the w exploration noise).", **d)
  flags.DEFINE_enum("features", "pixels", FEATURES, "The loss: pixels only (the default: "
                    "it measured best in the feature spaces not trained against, docs/gan.md), "
                    "or pixels plus a perceptual loss in the dataset evaluator's features or in "
                    "pretrained EfficientNet-Lite0's (artjax.image.perceptual).", **d)


def run(FLAGS, args, argv):
  need(FLAGS, "workdir", "images", "out", command="project")
  project_files(FLAGS.workdir, FLAGS.images, FLAGS.out, steps=FLAGS.steps, lr=FLAGS.lr,
                seed=FLAGS.seed, features=FLAGS.features, num=FLAGS.num)
