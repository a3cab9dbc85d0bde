"""Reading user images and masks, with one clear error per bad file (before anything compiles).

Accepted: PNG (8- or 16-bit, grayscale, gray+alpha, RGB, RGBA, palette) and JPEG. Images come
back as float32 [H, W, 3] in [0, 1]: grayscale is replicated to three channels, alpha is
composited on white. Masks come back as float32 [H, W] in [0, 1] (white = 1).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from artjax import ConfigError

# An image larger than this on its longest side is refused on reading (decompression bombs).
MAX_PIXELS = 8192 * 8192


def _open(path: str, what: str) -> Image.Image:
  if not path:
    raise ConfigError(f"{what}: no file given")
  if not os.path.isfile(path):
    raise ConfigError(f"{what}: {path} does not exist")
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      im = Image.open(path)
    if im.width * im.height > MAX_PIXELS:
      raise ConfigError(f"{what}: {path} is {im.width}x{im.height}, more than {MAX_PIXELS:,} pixels")
    im.load()
  except ConfigError:
    raise
  except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
    raise ConfigError(f"{what}: {path} claims more pixels than allowed ({' '.join(str(e).split())[:100]})") from e
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    raise ConfigError(f"{what}: {path} is not a readable image ({' '.join(str(e).split())})") from e
  if im.width < 1 or im.height < 1:
    raise ConfigError(f"{what}: {path} is empty")
  return im


def _to_float(im: Image.Image) -> np.ndarray:
  """Any PIL mode -> float32 [H, W, C] in [0, 1] (C = 1, 2, 3 or 4; 16-bit kept exact)."""
  if im.mode in ("I;16", "I;16B", "I;16L", "I"):
    a = np.asarray(im, np.float64)
    top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
    return (np.clip(a, 0, top) / top).astype(np.float32)[..., None]
  if im.mode == "F":
    a = np.asarray(im, np.float32)
    return np.clip(a / max(float(a.max()), 1e-8), 0, 1)[..., None]
  if im.mode not in ("L", "LA", "RGB", "RGBA"):
    im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
  a = np.asarray(im, np.float32) / 255.0
  return a if a.ndim == 3 else a[..., None]


def from_array(a) -> np.ndarray:
  """A numpy image (uint8/uint16/float, [H,W] or [H,W,1|2|3|4]) -> float32 [H, W, 3] in [0, 1]."""
  a = np.asarray(a)
  if a.dtype == np.uint8:
    a = a.astype(np.float32) / 255.0
  elif a.dtype == np.uint16:
    a = a.astype(np.float32) / 65535.0
  else:
    a = np.clip(a.astype(np.float32), 0.0, 1.0)
  if a.ndim == 2:
    a = a[..., None]
  c = a.shape[-1]
  if c in (2, 4):   # composite on white
    alpha = a[..., -1:]
    a = a[..., :-1] * alpha + (1.0 - alpha)
  if a.shape[-1] == 1:
    a = np.repeat(a, 3, axis=-1)
  return np.ascontiguousarray(a, np.float32)


def to_rgb(im: Image.Image) -> np.ndarray:
  """A decoded picture of any PIL mode -> float32 [H, W, 3] in [0, 1] (16-bit kept exact,
  alpha composited on white): the one decoder of files (CLI) and uploads (the service)."""
  return from_array(_to_float(im))


def read_image(path: str, what: str = "image") -> np.ndarray:
  """float32 [H, W, 3] in [0, 1]; a ConfigError naming `what` and the file if unusable."""
  return to_rgb(_open(path, what))


def read_mask(path: str, shape: tuple[int, int] | None = None, what: str = "--mask") -> np.ndarray:
  """float32 [H, W] in [0, 1] (white = 1, luminance of a colour mask; alpha multiplies).
  `shape`: the (H, W) it must have (a ConfigError otherwise)."""
  rgb = _to_float(_open(path, what))
  lum = rgb[..., :3].mean(-1) if rgb.shape[-1] >= 3 else rgb[..., 0]
  if rgb.shape[-1] in (2, 4):
    lum = lum * rgb[..., -1]
  if shape is not None and lum.shape != tuple(shape):
    raise ConfigError(f"{what}: {path} is {lum.shape[1]}x{lum.shape[0]} but the image is "
                      f"{shape[1]}x{shape[0]} (width x height); masks must match the image")
  return lum.astype(np.float32)


def resize(image: np.ndarray, size: int) -> np.ndarray:
  """float [H, W, C] with its longest side scaled to `size` (Lanczos; aspect kept)."""
  h, w = image.shape[:2]
  scale = size / max(h, w)
  nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
  if (nh, nw) == (h, w):
    return image
  chans = [np.asarray(Image.fromarray(image[..., c].astype(np.float32), mode="F")
                      .resize((nw, nh), Image.LANCZOS)) for c in range(image.shape[-1])]
  return np.clip(np.stack(chans, -1), 0.0, 1.0).astype(np.float32)


def resize_to(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
  """float [H, W, C] resized to exactly (h, w) (bilinear)."""
  h, w = hw
  chans = [np.asarray(Image.fromarray(image[..., c].astype(np.float32), mode="F")
                      .resize((w, h), Image.BILINEAR)) for c in range(image.shape[-1])]
  return np.stack(chans, -1).astype(np.float32)


def to_uint8(image) -> np.ndarray:
  return np.asarray(np.round(np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0), np.uint8)


def write_png(path: str, image) -> None:
  """float [H, W, C] in [0, 1] or uint8 -> PNG (parent folders created)."""
  a = np.asarray(image)
  a = a if a.dtype == np.uint8 else to_uint8(a)
  if a.shape[-1] == 1:
    a = a[..., 0]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(a).save(path)


def panel(images, height: int = 256, pad: int = 4) -> np.ndarray:
  """Side-by-side uint8 panel of float [H, W, 3] images, each scaled to `height` (white gaps)."""
  cols = []
  for im in images:
    h, w = im.shape[:2]
    cols.append(to_uint8(resize_to(np.asarray(im, np.float32), (height, max(1, round(w * height / h))))))
  width = sum(c.shape[1] for c in cols) + pad * (len(cols) + 1)
  out = np.full((height + 2 * pad, width, 3), 255, np.uint8)
  x = pad
  for c in cols:
    out[pad:pad + height, x:x + c.shape[1]] = c
    x += c.shape[1] + pad
  return out


PICTURES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


def fit_square(image: np.ndarray, shape) -> np.ndarray:
  """float [H, W, 3] in [0, 1] -> uint8 of `shape` (h, w, c): centre crop to a square, then
  Lanczos resize (antialiased when shrinking); c = 1 takes the mean of the channels."""
  h, w = image.shape[:2]
  s = min(h, w)
  image = image[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
  image = resize(image, shape[0]) if shape[0] == shape[1] else resize_to(image, shape[:2])
  if shape[-1] == 1:
    image = image.mean(-1, keepdims=True)
  return to_uint8(image)


def picture_files(path: str, what: str, max_files: int) -> list:
  """One picture, or every picture under a folder (recursive, sorted by path)."""
  import glob
  if not path or not os.path.exists(path):
    raise ConfigError(f"{what}: {path} does not exist")
  files = ([path] if os.path.isfile(path) else
           sorted(f for f in glob.glob(os.path.join(path, "**", "*"), recursive=True)
                  if f.lower().endswith(PICTURES)))
  if not files:
    raise ConfigError(f"{what}: no pictures ({', '.join(PICTURES)}) in {path}")
  if len(files) > max_files:
    raise ConfigError(f"{what}: {len(files)} pictures; at most {max_files} per call")
  return files
