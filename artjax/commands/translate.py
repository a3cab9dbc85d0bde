"""`run.py translate`: turn pictures in a translator's source style into its target style
(a run of configs/translate.py). Inputs are read and checked before anything compiles; a
problem is one `error:` line and nothing is written. Pictures of another size are resized
to the run's (centre-cropped to square first), with a one-line note; the output keeps the
input's order."""

from __future__ import annotations

import os

import numpy as np
from absl import flags

from artjax import ConfigError
from artjax.commands.options import check_outputs, need
from artjax.engine import workdir as runs
from artjax.engine.writers import image_grid, save_png
from artjax.image import io as image_io
from artjax.tasks import build_task, open_run
from artjax.tasks.translate_report import translate_arrays

SUMMARY = "turn pictures into another style with a trained translator (pix2pix)"
USAGE = "translate --workdir=DIR --images=IN.npz|DIR|FILE.png --out=OUT.npz [--grid=G.png]"
MAX_IMAGES = 65536


def _npz_images(path: str) -> np.ndarray:
  try:
    with np.load(path) as z:
      if "images" not in z.files:
        raise ConfigError(f"--images: {path} has no 'images' array (has {z.files})")
      x = np.asarray(z["images"])
  except ConfigError:
    raise
  except Exception as e:
    raise ConfigError(f"--images: {path} is not a readable .npz ({' '.join(str(e).split())})") from e
  if x.dtype != np.uint8:
    bad = " (it holds NaN or infinite values)" if (np.issubdtype(x.dtype, np.floating)
                                                  and not np.isfinite(x).all()) else ""
    raise ConfigError(f"--images: 'images' must be uint8 [N, H, W, C], got {x.dtype}{bad}")
  if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
    raise ConfigError(f"--images: 'images' must be uint8 [N, H, W, C] with C = 1, 3 or 4, "
                      f"got shape {list(x.shape)}")
  if len(x) == 0:
    raise ConfigError(f"--images: {path} holds no images (N = 0): nothing to translate")
  if len(x) > MAX_IMAGES:
    raise ConfigError(f"--images: {len(x)} images; translate at most {MAX_IMAGES} per call")
  return x


def read_inputs(path: str, shape) -> np.ndarray:
  """uint8 [N, *shape] from an .npz ('images'), one picture or a folder (sorted by path)."""
  shape = tuple(shape)
  if path.lower().endswith(".npz") and os.path.isfile(path):
    x = _npz_images(path)
    if x.shape[1:] == shape:
      return x
    print(f"note: resizing {len(x)} image(s) from {x.shape[1]}x{x.shape[2]}x{x.shape[3]} to the "
          f"run's {shape[0]}x{shape[1]}x{shape[2]} (centre crop, Lanczos; alpha on white)", flush=True)
    return np.stack([image_io.fit_square(image_io.from_array(im), shape) for im in x])
  files = image_io.picture_files(path, "--images", MAX_IMAGES)
  return np.stack([image_io.fit_square(image_io.read_image(f, "--images"), shape) for f in files])


def translate_files(workdir, images, out, grid=None) -> np.ndarray:
  if not out or not out.endswith(".npz"):
    raise ConfigError(f"--out must name an .npz file, got {out!r}")
  check_outputs({"--out": out, "--grid": grid}, {"--images": images})
  task = build_task(runs.load_config(workdir)).unwrapped
  if not task.translates_images:
    raise ConfigError(f"{workdir!r} is a {task.config.task} run: translate needs a translation "
                      "run (configs/translate.py)")
  x = read_inputs(images, task.image_shape)
  task, state = open_run(workdir)
  y = translate_arrays(task.unwrapped, state, x)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  tmp = out[:-4] + ".partial.npz"
  np.savez(tmp, images=y)
  os.replace(tmp, out)
  if grid:
    n = min(len(x), 32)
    save_png(grid, image_grid(np.stack([x[:n], y[:n]], 1).reshape((-1,) + x.shape[1:]),
                              ncol=2 * min(n, 8), scale=max(1, 64 // x.shape[1])))
  t = task.config.translate
  print(f"translated {len(x)} picture(s) {t.source} -> {t.target} -> {out}"
        + (f"; pairs source | translation -> {grid}" if grid else ""))
  return y


def define(fv, argv):
  d = dict(flag_values=fv)
  flags.DEFINE_string("workdir", None, "A trained translation run (configs/translate.py).", **d)
  flags.DEFINE_string("images", None, "IN.npz with 'images' uint8 [N, H, W, C], one picture, or "
                      "a folder of pictures (recursive, sorted by path; PNG/JPEG/WebP/BMP/GIF); "
                      "other sizes are centre-cropped and resized to the run's, with a note.", **d)
  flags.DEFINE_string("out", None, "OUT.npz: 'images' uint8 [N, H, W, C], in the input's order.", **d)
  flags.DEFINE_string("grid", None, "Optional PNG: pairs source | translation.", **d)


def run(FLAGS, args, argv):
  need(FLAGS, "workdir", "images", "out", command="translate")
  translate_files(FLAGS.workdir, FLAGS.images, FLAGS.out, grid=FLAGS.grid)
