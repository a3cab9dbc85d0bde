"""Run outputs: metrics.jsonl, TensorBoard events (tensorboardX, no TensorFlow), PNG grids."""

from __future__ import annotations

import json
import math
import os

import numpy as np
from PIL import Image


def image_grid(images: np.ndarray, ncol: int | None = None, pad: int = 1, scale: int = 1) -> np.ndarray:
  """uint8 [N,H,W,C] -> one uint8 [rows*(H+pad)+pad, ..., C] grid (white padding)."""
  images = np.asarray(images)
  n, h, w, c = images.shape
  ncol = ncol or int(math.ceil(math.sqrt(n)))
  nrow = int(math.ceil(n / ncol))
  grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, np.uint8)
  for i in range(n):
    r, q = divmod(i, ncol)
    grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = images[i]
  if scale > 1:
    grid = grid.repeat(scale, 0).repeat(scale, 1)
  return grid


def save_png(path: str, grid: np.ndarray) -> None:
  grid = np.asarray(grid, np.uint8)
  if grid.shape[-1] == 1:
    grid = grid[..., 0]
  Image.fromarray(grid).save(path)


class MetricWriter:
  """Writes scalars to metrics.jsonl and TensorBoard; images to PNG and TensorBoard.

  Only the writing process (process 0) should construct one with `enabled=True`.
  """

  def __init__(self, workdir: str, enabled: bool = True, resume_step: int | None = None):
    """`resume_step`: the checkpoint a run resumes from; rows logged after it (by the run
    that was interrupted) are dropped so steps never repeat. None: a fresh run (no rows kept)."""
    self.enabled = enabled
    self.workdir = workdir
    self._jsonl = None
    self._tb = None
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      path = os.path.join(workdir, "metrics.jsonl")
      keep = []
      if resume_step is not None and os.path.exists(path):
        with open(path) as f:
          keep = [line for line in f if line.strip() and json.loads(line)["step"] <= resume_step]
      with open(path, "w") as f:
        f.writelines(keep)
      self._jsonl = open(path, "a")
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(os.path.join(workdir, "tb"))

  def scalars(self, step: int, metrics: dict) -> None:
    if not self.enabled:
      return
    clean = {k: float(v) for k, v in metrics.items()}
    strict = {k: (v if math.isfinite(v) else None) for k, v in clean.items()}   # strict JSON
    self._jsonl.write(json.dumps({"step": int(step), **strict}, allow_nan=False) + "\n")
    self._jsonl.flush()
    for k, v in clean.items():
      if math.isfinite(v):
        self._tb.add_scalar(k, v, int(step))

  def image(self, step: int, name: str, grid: np.ndarray, png_path: str | None = None) -> None:
    if not self.enabled:
      return
    self._tb.add_image(name, np.asarray(grid, np.uint8), int(step), dataformats="HWC")
    if png_path:
      save_png(png_path, grid)

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()
