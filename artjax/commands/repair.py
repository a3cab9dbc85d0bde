"""`run.py repair`: fill in the missing parts of images with a trained image GAN (inversion)
or a trained inpainting network (`configs/repair.py`). Inputs are read and checked before
anything compiles; a problem is one ConfigError and nothing is written."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from absl import flags

from artjax import ConfigError
from artjax.commands.options import check_outputs, need
from artjax.tasks import open_run
from artjax.engine import workdir as runs
from artjax.image import inversion
from artjax.tasks import build_task, quant_bits
from artjax.engine.writers import image_grid, save_png

METHODS = ("auto", "invert", "net")
CHUNK = 512


def _npz(path, key, what):
  if not path or not os.path.isfile(path):
    raise ConfigError(f"{what}: {path} does not exist")
  try:
    with np.load(path) as z:
      if key not in z.files:
        raise ConfigError(f"{what}: {path} has no {key!r} array (has {z.files})")
      return {k: np.asarray(z[k]) for k in z.files}
  except ConfigError:
    raise
  except Exception as e:
    raise ConfigError(f"{what}: {path} is not a readable .npz ({' '.join(str(e).split())})") from e


def _png(path, what, mode):
  if not path or not os.path.isfile(path):
    raise ConfigError(f"{what}: {path} does not exist")
  try:
    im = Image.open(path)
    im.load()
  except Exception as e:
    raise ConfigError(f"{what}: {path} is not a readable image ({' '.join(str(e).split())})") from e
  return np.asarray(im.convert(mode))


def read_inputs(images=None, masks=None, image=None, mask=None, channels=1):
  """(uint8 images [N, H, W, C], bool missing [N, H, W], originals or None)."""
  if image or mask:
    if not (image and mask):
      raise ConfigError("repair one file: --image=X.png needs --mask=M.png")
    x = _png(image, "--image", "L" if channels == 1 else "RGB")
    x = x[None, ..., None] if x.ndim == 2 else x[None]
    m = _png(mask, "--mask", "L")
    if not np.isin(m, (0, 255)).all():
      raise ConfigError(f"--mask: {mask} must be black and white only (white = missing), "
                        f"found grey levels {sorted(set(np.unique(m)) - {0, 255})[:5]}")
    return x, (m == 255)[None], None
  if not images or not masks:
    raise ConfigError("repair needs --images=IN.npz and --masks=MASKS.npz (or --image and --mask)")
  z = _npz(images, "images", "--images")
  x = z["images"]
  if x.dtype != np.uint8 or x.ndim != 4:
    raise ConfigError(f"--images: 'images' must be uint8 [N, H, W, C], got {x.dtype} {list(x.shape)}")
  m = _npz(masks, "masks", "--masks")["masks"]
  if m.dtype != np.bool_:
    raise ConfigError(f"--masks: 'masks' must be bool (True = missing), got {m.dtype}")
  return x, m, z.get("originals")


def check(x, missing, shape, originals=None):
  if len(x) == 0:
    raise ConfigError("--images holds no images (N = 0): nothing to repair")
  if x.shape[1:] != tuple(shape):
    raise ConfigError(f"the images are {list(x.shape[1:])} but the run makes {list(shape)} "
                      "(H, W, C); repair images at the run's resolution")
  if missing.shape != x.shape[:3]:
    raise ConfigError(f"masks {list(missing.shape)} do not match images {list(x.shape[:3])} (N, H, W)")
  if originals is not None and originals.shape != x.shape:
    raise ConfigError(f"'originals' {list(originals.shape)} do not match 'images' {list(x.shape)}")
  per = missing.reshape(len(missing), -1)
  if not per.any(1).all():
    raise ConfigError(f"mask {int(np.argmin(per.any(1)))} is empty: nothing is missing")
  if per.all(1).any():
    raise ConfigError(f"mask {int(np.argmax(per.all(1)))} covers the whole image: nothing is left to "
                      "repair from (sample the model instead)")


def _method(task, method, workdir):
  if method not in METHODS:
    raise ConfigError(f"--method={method!r}: choose one of {METHODS}")
  if not task.repairs_images:
    raise ConfigError(f"{workdir!r} is a {task.config.task} run: repair needs an image GAN run "
                      "or an inpainting run (configs/repair.py)")
  kind = "net" if task.repairs_images == "network" else "invert"
  if method != "auto" and method != kind:
    raise ConfigError(f"--method={method} needs {'an inpainting' if method == 'net' else 'an image GAN'} "
                      f"run; {workdir!r} is a {task.config.task} run (use --method={kind} or auto)")
  return kind


def repair_arrays(task, state, x, missing, settings=None, seed=0):
  """Repairs in chunks of CHUNK images with one compiled function; numpy in and out."""
  fn = jax.jit(lambda st, xs, ms, key: task.repair(st, xs, ms, key, settings))
  outs = []
  for i in range(0, len(x), CHUNK):
    key = jax.random.fold_in(jax.random.key(seed), i)
    outs.append(jax.device_get(fn(state, jnp.asarray(x[i:i + CHUNK]), jnp.asarray(missing[i:i + CHUNK]), key)))
  return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def repair_files(workdir, out, *, images=None, masks=None, image=None, mask=None, method="auto",
        grid=None, restarts=None, steps=None, seed=0, perceptual=None):
  if not out:
    raise ConfigError("repair needs --out=OUT.npz (or OUT.png with --image)")
  single = bool(image or mask)
  if single != out.lower().endswith(".png") or (not single and not out.lower().endswith(".npz")):
    raise ConfigError("--out must be .png with --image/--mask and .npz with --images/--masks")
  check_outputs({"--out": out, "--grid": grid},
                {"--images": images, "--masks": masks, "--image": image, "--mask": mask})
  for name, value in (("restarts", restarts), ("steps", steps)):
    if value is not None and not 1 <= value <= 100_000:
      raise ConfigError(f"--{name} must be in 1..100000, got {value}")
  if perceptual is not None and not (np.isfinite(perceptual) and 0 <= perceptual <= 1e4):
    raise ConfigError(f"--perceptual must be a weight in 0..10000, got {perceptual}")
  config = runs.load_config(workdir)
  if quant_bits(config):
    raise ConfigError(f"{workdir!r} is a quantised run (sampling weights only); GAN inversion "
                      f"needs the discriminator: repair with its source {config.deploy.source!r}")
  task = build_task(config).unwrapped
  kind = _method(task, method, workdir)
  shape = tuple(task.image_shape)
  x, missing, originals = read_inputs(images, masks, image, mask, channels=shape[-1])
  check(x, missing, shape, originals)
  settings = None
  if kind == "invert":
    d = inversion.Settings()
    settings = inversion.Settings(restarts=d.restarts if restarts is None else restarts,
                                  steps=d.steps if steps is None else steps,
                                  perceptual=d.perceptual if perceptual is None else perceptual)
  _, state = open_run(workdir)
  result = repair_arrays(task, state, x, missing, settings, seed)
  assert (result["images"][~missing] == x[~missing]).all()
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  if single:
    save_png(out, result["images"][0])
  else:
    np.savez(out, **result)
  if grid:
    save_png(grid, panel_grid(x, missing, result["images"], originals))
  label = "; inferred labels in 'labels'" if "labels" in result and not single else ""
  print(f"repaired {len(x)} image(s) by {'GAN inversion' if kind == 'invert' else 'the inpainting network'}"
        f" -> {out}{label}")
  return result


def panel_grid(x, missing, repaired, originals=None):
  """Rows of damaged (missing pixels red) | repaired | original."""
  rgb = lambda a: np.repeat(a, 3, -1) if a.shape[-1] == 1 else a
  damaged = rgb(x).copy()
  damaged[missing] = (255, 0, 0)
  cols = [damaged, rgb(repaired)] + ([rgb(originals)] if originals is not None else [])
  n = min(len(x), 40)
  stacked = np.stack([c[:n] for c in cols], 1).reshape(-1, *damaged.shape[1:])
  return image_grid(stacked, ncol=len(cols) * 4 if n >= 4 else len(cols),
                    scale=max(1, 64 // x.shape[1]))


SUMMARY = "fill in missing parts of images (GAN inversion, or an inpainting network)"
USAGE = ("repair --workdir=DIR --images=IN.npz --masks=M.npz --out=O.npz "
         "| --image=IN.png --mask=M.png --out=O.png")


def define(fv, argv):
  d = dict(flag_values=fv)
  flags.DEFINE_string("workdir", None, "A trained GAN (inversion) or inpainting (configs/repair.py) run.", **d)
  flags.DEFINE_string("images", None, "IN.npz with 'images' uint8 [N,H,W,C].", **d)
  flags.DEFINE_string("masks", None, "MASKS.npz with 'masks' bool [N,H,W] (True = missing).", **d)
  flags.DEFINE_string("image", None, "One image (PNG) to repair, with --mask.", **d)
  flags.DEFINE_string("mask", None, "The PNG mask of --image (white = missing).", **d)
  flags.DEFINE_string("out", None, "The repaired images: .npz (with --images) or .png (with --image).", **d)
  flags.DEFINE_string("method", "auto", "auto | invert (GAN runs) | net (inpainting runs).", **d)
  flags.DEFINE_integer("restarts", None, "--method=invert: random starts per image and class "
                       "(default: artjax.image.inversion.Settings).", **d)
  flags.DEFINE_integer("steps", None, "--method=invert: Adam steps (default: "
                       "artjax.image.inversion.Settings).", **d)
  flags.DEFINE_float("perceptual", None, "--method=invert: weight of the LPIPS-style distance "
                     "of the visible pixels in pretrained EfficientNet-Lite0's features "
                     "(artjax.image.perceptual; 0 = pixels only; default: "
                     "artjax.image.inversion.Settings).", **d)
  flags.DEFINE_string("grid", None, "Optional PNG panel: damaged | repaired (| original).", **d)
  flags.DEFINE_integer("seed", 0, "Random seed of the inversion's starts.", **d)


def run(FLAGS, args, argv):
  need(FLAGS, "workdir", "out", command="repair")
  repair_files(FLAGS.workdir, FLAGS.out, images=FLAGS.images, masks=FLAGS.masks,
               image=FLAGS.image, mask=FLAGS.mask, method=FLAGS.method, grid=FLAGS.grid,
               restarts=FLAGS.restarts, steps=FLAGS.steps, seed=FLAGS.seed,
               perceptual=FLAGS.perceptual)
