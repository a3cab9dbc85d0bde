"""Serving image generators: /v1/generate (PNG grid or npz of a request's images) and
/v1/animate (MP4 / GIF of a looping latent walk).

Model side: the exported row sampler (`rows.jaxexport`: every row carries its request's seed
and row index, so requests merge into one call and each still gets `run.py sample`'s images)
and, when exported, the walk (`walk.jaxexport`). HTTP side: the request's fields, checked, and
the answer's bytes.
"""

from __future__ import annotations

import dataclasses
import io
import os
import secrets

import jax
import numpy as np
from PIL import Image

from artjax import ConfigError, deploy
from artjax.engine.writers import image_grid
from artjax.serve.http import MAX_SEED, BadRequest, Endpoint, counted_request, field, unknown_fields
from artjax.serve.served import Model, buckets

KIND = "images"
EXPORTED, IN_MEMORY = deploy.ROWS, "rows"      # the export file / in-memory sampler served
FIELDS = {"model", "num", "seed", "labels", "format"}
ANIMATE_FIELDS = {"model", "seed", "seconds", "fps", "size", "label", "format"}
WALK_BATCH = 16      # frames per call of an animation


@dataclasses.dataclass
class ImageModel(Model):
  walk: object = None          # the jitted exported walk (/v1/animate), or None
  merges_rows = True
  formats = ("png", "npz")

  def describe(self) -> dict:
    return dict(super().describe(), animates=self.walk is not None)

  def run_images(self, seeds, rows, labels):
    """uint8 [n, H, W, C] for n rows (padded to a bucket for the call)."""
    n = len(seeds)
    b = self.bucket(n)
    pad = lambda a: np.concatenate([np.asarray(a, np.int32), np.zeros(b - n, np.int32)])
    return np.asarray(self.fn(pad(seeds), pad(rows), pad(labels)))[:n]

  def run_walk(self, seed: int, frames: int, label: int):
    """uint8 [frames, H, W, C]: the walk `run.py animate --seed` renders, WALK_BATCH frames
    per call of one compiled program."""
    out = []
    for i in range(0, frames, WALK_BATCH):
      idx = np.minimum(np.arange(i, i + WALK_BATCH), frames - 1).astype(np.int32)
      out.append(np.asarray(self.walk(np.int32(seed), np.int32(frames), np.int32(label), idx)))
    return np.concatenate(out)[:frames]

  def warm_up(self) -> None:
    if self.walk is not None:
      jax.block_until_ready(self.run_walk(0, 2, 0))
    for b in self.buckets:
      z = np.zeros(b, np.int32)
      jax.block_until_ready(self.fn(z, z, z))


def make(name: str, manifest: dict, fn, files: dict, limits: dict, path: str) -> ImageModel:
  limit = manifest["rows"]["max_num"]
  if limits["max_num"] > limit:
    raise ConfigError(f"--max_num={limits['max_num']} exceeds the {limit} rows per request the "
                      f"exported row sampler of {path!r} draws")
  walk = files.get("walk")
  return ImageModel(name, KIND, manifest, fn, buckets(limits["max_batch"]), limits["max_num"],
                    int(manifest.get("num_classes", 0)),
                    walk=None if walk is None else jax.jit(walk.call))


# --- /v1/generate ----------------------------------------------------------------------------
def parse(body: dict, m, settings) -> dict:
  """The validated request (BadRequest with the first problem)."""
  req = counted_request(body, FIELDS, f"a {m.kind} model", m.max_num, ImageModel.formats, "png")
  req["labels"] = _labels(body, req["num"], m.num_classes)
  return req


def _labels(body, num: int, classes: int):
  if "labels" not in body:
    return np.arange(num) % max(classes, 1)
  labels = body["labels"]
  if not isinstance(labels, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in labels):
    raise BadRequest(422, "'labels' must be a list of integers")
  if classes == 0:
    raise BadRequest(422, "'labels' given, but this model is unconditional")
  if len(labels) != num:
    raise BadRequest(422, f"'labels' has {len(labels)} entries, 'num' is {num}")
  bad = [v for v in labels if not 0 <= v < classes]
  if bad:
    raise BadRequest(422, f"label {bad[0]} is out of range 0..{classes - 1}")
  return np.asarray(labels)


async def run(work, m, req):
  return await work.images(m.name, req["seed"], req["labels"])


def encode(images, m, req) -> tuple[bytes, str]:
  buf = io.BytesIO()
  if req["format"] == "npz":
    np.savez(buf, images=images, labels=np.asarray(req["labels"], np.int32),
             seed=np.int32(req["seed"]))
  else:
    grid = image_grid(images, ncol=min(m.num_classes or 10, len(images)),
                      scale=max(1, 64 // images.shape[1]))
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(buf, format="PNG")
  return buf.getvalue(), req["format"]


GENERATE = Endpoint(KIND, parse, run, encode)


# --- /v1/animate -----------------------------------------------------------------------------
def parse_animate(body: dict, m, settings) -> dict:
  """A validated /v1/animate request (BadRequest with the first problem)."""
  unknown_fields(body, ANIMATE_FIELDS)
  req = {"seed": field(body, "seed", int, secrets.randbelow(MAX_SEED), 0, MAX_SEED),
         "seconds": float(field(body, "seconds", float, 2.0, 0.1, 600.0)),
         "fps": field(body, "fps", int, 12, 1, 30), "size": field(body, "size", int, 128, 8, 512),
         "label": field(body, "label", int, 0, 0, max(m.num_classes - 1, 0)),
         "format": field(body, "format", str, "mp4")}
  if req["format"] not in ("mp4", "gif"):
    raise BadRequest(422, f"unknown format {req['format']!r}; choose mp4 or gif")
  req["frames"] = int(round(req["seconds"] * req["fps"]))
  if not 2 <= req["frames"] <= settings.max_frames:
    raise BadRequest(422, f"seconds x fps = {req['frames']} frames; this service makes videos "
                          f"of 2..{settings.max_frames} frames")
  if req["frames"] * req["size"] ** 2 > settings.max_video_pixels:
    raise BadRequest(422, f"{req['frames']} frames of {req['size']}x{req['size']} are above this "
                          f"service's {settings.max_video_pixels:,} pixels per video: lower size, "
                          "seconds or fps")
  return req


async def run_animate(work, m, req):
  return await work.animate(m.name, req["seed"], req["frames"], req["label"])


def encode_video(frames, size: int, fps: int, fmt: str) -> bytes:
  """MP4 (H.264) or GIF bytes of uint8 frames [F, h, w, C], nearest-upscaled to size x size
  (the same pixels as `run.py animate --size`'s nearest resize)."""
  import tempfile
  from artjax.engine.video import VideoWriter
  f = np.asarray(frames)
  if f.shape[-1] == 1:
    f = np.repeat(f, 3, -1)
  rows = np.minimum((np.arange(size) * f.shape[1]) // size, f.shape[1] - 1)
  cols = np.minimum((np.arange(size) * f.shape[2]) // size, f.shape[2] - 1)
  f = f[:, rows][:, :, cols]
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, f"walk.{fmt}")
    with VideoWriter(path, fps, (size + size % 2, size + size % 2)) as video:
      video.write(np.pad(f, ((0, 0), (0, size % 2), (0, size % 2), (0, 0)), mode="edge"))
    with open(path, "rb") as fh:
      return fh.read()


ANIMATE = Endpoint(
    KIND, parse_animate, run_animate,
    lambda frames, m, req: (encode_video(frames, req["size"], req["fps"], req["format"]),
                            req["format"]),
    accepts=lambda info: bool(info.describe().get("animates")),
    items=lambda req: req["frames"], headers=lambda req, out: {"X-Artjax-Frames": str(req["frames"])})
