"""`run.py sample --latents=Z.npz`: render a user's own latents, as NVIDIA's generate.py does.

The file (an .npz, read without pickle) holds `z` [N, z_dim] -- with `labels` [N] (class
indices) or `c` [N, classes] (one-hot or class weights) for conditional models -- or, for
StyleGAN models, `w` [N, w_dim] / [N, num_ws, w_dim] as `run.py project` and NVIDIA's
projector write it. Images are written as NVIDIA writes them: `(x * 127.5 + 128).clip(0, 255)`
to uint8, x in [-1, 1]."""

from __future__ import annotations

import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from artjax import ConfigError


def _array(z, key, path):
  try:
    return np.asarray(z[key])
  except (ValueError, OSError, zipfile.BadZipFile) as e:
    raise ConfigError(f"--latents: {path}: {key!r} is not a plain array ({e})") from e


def _labels(z, task, n, path):
  if "labels" in z.files:
    y = _array(z, "labels", path)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or (
        n and (y.min() < 0 or y.max() >= task.num_classes)):
      raise ConfigError(f"--latents: {path}: 'labels' must be [{n}] integers in "
                        f"0..{task.num_classes - 1}, got {y.dtype} {y.shape}")
    return y.astype(np.int32)
  c = _array(z, "c", path).astype(np.float32)
  if c.shape != (n, task.num_classes) or not np.isfinite(c).all() or (c < 0).any():
    raise ConfigError(f"--latents: {path}: 'c' must be [{n}, {task.num_classes}] one-hot rows "
                      f"or class weights, got {c.shape}")
  onehot = (np.isin(c, (0.0, 1.0)).all() and (c.sum(1) == 1).all())
  return c.argmax(1).astype(np.int32) if onehot else c


def read(path: str, task, max_num: int) -> dict:
  """{"z" or "w": float32 array, "labels": ...} checked against the task; ConfigError else."""
  if not os.path.isfile(path):
    raise ConfigError(f"--latents: {path} does not exist")
  try:
    z = np.load(path, allow_pickle=False)
  except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
    raise ConfigError(f"--latents: {path} is not an .npz file ({' '.join(str(e).split())[:120]})")
  with z:
    keys = [k for k in task.latent_keys if k in z.files]
    if len(keys) != 1:
      raise ConfigError(f"--latents: {path} must hold exactly one of {', '.join(task.latent_keys)} "
                        f"(it holds {', '.join(z.files) or 'nothing'})")
    key = keys[0]
    x = _array(z, key, path)
    want = task.latent_shapes(key)
    if x.ndim not in [len(s) + 1 for s in want] or tuple(x.shape[1:]) not in want or not (
        0 < len(x) <= max_num) or not np.issubdtype(x.dtype, np.floating):
      raise ConfigError(f"--latents: {path}: {key!r} must be float [N, "
                        f"{' or '.join(', '.join(map(str, s)) for s in want)}] with N in "
                        f"1..{max_num}, got {x.dtype} {x.shape}")
    if not np.isfinite(x).all():
      raise ConfigError(f"--latents: {path}: {key!r} holds NaN or infinite values")
    out = {key: x.astype(np.float32)}
    if task.conditional and key == "z":
      if "labels" not in z.files and "c" not in z.files:
        raise ConfigError(f"--latents: {path}: a conditional model needs 'labels' [N] or "
                          f"'c' [N, {task.num_classes}] beside 'z'")
      out["labels"] = _labels(z, task, len(x), path)
  return out


def nvidia_uint8(x, pixel_range):
  """NVIDIA's conversion of images in `pixel_range` to uint8."""
  lo, hi = pixel_range
  x = (x.astype(jnp.float32) - lo) * (2.0 / (hi - lo)) - 1.0
  return jnp.clip(x * 127.5 + 128.0, 0, 255).astype(jnp.uint8)


def render(task, state, latents: dict, noise_mode: str, seed: int) -> dict:
  """{"images": uint8 [N, H, W, C], "labels": ...} of the latents, compiled once."""
  fn = jax.jit(lambda st, lat: nvidia_uint8(task.given_latents(st, lat, noise_mode, seed),
                                            task.pixel_range))
  out = {"images": np.asarray(jax.device_get(fn(state, latents)))}
  if "labels" in latents and np.ndim(latents["labels"]) == 1:
    out["labels"] = latents["labels"]
  return out
