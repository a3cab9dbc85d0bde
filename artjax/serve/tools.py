"""Served image tools: a user's picture in, a picture out.

    stylize  a trained feed-forward style network (configs/style.py): the upload's longest
             side is scaled to `size` and the picture padded (reflected) to size x size, so
             one compiled program serves every upload; the result is cropped back.
    repair   a trained inpainting network (configs/repair.py): the upload and its mask
             (white = missing, at least half-white counts) are scaled to the run's
             resolution; visible pixels come back unchanged.

Both run from a training workdir (the weights as `run.py stylize --workdir` / `run.py repair`
use them), compiled during warm-up, one call at a time per tool on a worker thread.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import threading

import jax
import numpy as np
from PIL import Image

from artjax import ConfigError
from artjax.serve.http import BadRequest, Endpoint, decode_upload
from artjax.tasks import open_run


@dataclasses.dataclass
class Tool:
  """A served image tool (see the module docstring): StyleTool or RepairTool."""
  name: str
  kind: str              # "stylize" | "repair"
  manifest: dict         # {"task", "model", "step"}
  fn: object             # jitted: stylize f32 [1,S,S,3] -> same; repair (u8, bool) -> u8
  shape: tuple           # stylize: (S, S); repair: the run's (H, W, C)
  lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

  @property
  def step(self) -> int:
    return int(self.manifest["step"])

  def describe(self) -> dict:
    return {"name": self.name, "kind": self.kind, "model": self.manifest["model"],
            "step": self.step, "size": list(self.shape[:2]), "formats": ["png"]}


class StyleTool(Tool):
  def warm_up(self) -> None:
    h, w = self.shape[:2]
    jax.block_until_ready(self.fn(np.zeros((1, h, w, 3), np.float32)))

  def stylize(self, image: np.ndarray) -> np.ndarray:
    """float [H, W, 3] in [0, 1] -> uint8 [h, w, 3] (longest side scaled to the tool's size)."""
    s = self.shape[0]
    h, w = image.shape[:2]
    scale = s / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    x = _resize(image, nh, nw)
    x = np.pad(x, ((0, s - nh), (0, s - nw), (0, 0)), mode="reflect" if min(nh, nw) > 1 else "edge")
    with self.lock:
      y = np.asarray(self.fn(x[None]))[0, :nh, :nw]
    return np.asarray(np.round(np.clip(y, 0, 1) * 255), np.uint8)


class RepairTool(Tool):
  def warm_up(self) -> None:
    h, w = self.shape[:2]
    miss = np.zeros((1, h, w), bool)
    miss[0, 0, 0] = True
    jax.block_until_ready(self.fn(np.zeros((1, *self.shape), np.uint8), miss))

  def repair(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [H, W, C] at the run's resolution, its bool missing mask); ValueError with the
    reason when the mask leaves nothing to repair or nothing to repair from."""
    h, w, c = self.shape
    x = _resize(image, h, w)
    x = x.mean(-1, keepdims=True) if c == 1 else x
    x = np.asarray(np.round(np.clip(x, 0, 1) * 255), np.uint8)
    missing = _resize(mask[..., None], h, w)[..., 0] >= 0.5
    if not missing.any():
      raise ValueError("the mask marks nothing missing (white = missing)")
    if missing.all():
      raise ValueError("the mask covers the whole picture: nothing is left to repair from")
    with self.lock:
      out = np.asarray(self.fn(x[None], missing[None]))[0]
    return out, missing


def _resize(image: np.ndarray, h: int, w: int) -> np.ndarray:
  if image.shape[:2] == (h, w):
    return image.astype(np.float32)
  chans = [np.asarray(Image.fromarray(image[..., i].astype(np.float32), mode="F")
                      .resize((w, h), Image.BILINEAR)) for i in range(image.shape[-1])]
  return np.stack(chans, -1).astype(np.float32)


def load(path: str, name: str, size: int) -> Tool:
  """The tool a style or inpainting workdir serves (ConfigError for anything else)."""
  task, state = open_run(path)
  kind = tool_kind(task)
  manifest = {"task": task.config.task, "model": task.describe(), "step": int(state["step"])}
  if kind == "stylize":
    m = task.image_multiple
    if size % m or not 16 <= size <= 2048:
      raise ConfigError(f"--image_size={size} must be in 16..2048 and a multiple of {m}")
    fn = functools.partial(jax.jit(task.transform), state)
    return StyleTool(name, kind, manifest, fn, (size, size))
  if kind == "repair":
    fn = functools.partial(jax.jit(lambda st, x, m: task.repair(st, x, m)["images"]), state)
    return RepairTool(name, kind, manifest, fn, tuple(task.image_shape))
  raise ConfigError(f"{path!r} is a {task.config.task} run: not a style or inpainting network")


def tool_kind(task) -> str | None:
  """What a task (or its class) serves as a tool, by its declared capabilities: "stylize"
  (it transforms images), "repair" (an inpainting network), or None (not a tool)."""
  if task.transforms_images:
    return "stylize"
  return "repair" if task.repairs_images == "network" else None


def is_tool(config) -> bool:
  from artjax.tasks.build import task_class
  return tool_kind(task_class(config)) is not None




# --- HTTP: /v1/stylize and /v1/repair (multipart uploads) --------------------------------------
def _parts_present(parts: dict, needed: tuple) -> dict:
  for need in needed:
    if need not in parts:
      raise BadRequest(422, f"missing the '{need}' file part (curl -F image=@x.png"
                            + (" -F mask=@m.png)" if "mask" in needed else ")"))
  return parts


async def _stylize(work, tool, parts):
  return await work.stylize(tool.name, await decode_upload(parts["image"], "image"))


async def _repair(work, tool, parts):
  image, mask = await decode_upload(parts["image"], "image"), await decode_upload(parts["mask"], "mask")
  if mask.shape[:2] != image.shape[:2]:
    raise BadRequest(422, f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                          f"{image.shape[1]}x{image.shape[0]}: they must match")
  return await work.repair(tool.name, image, mask.mean(-1))


def encode_png(image) -> bytes:
  buf = io.BytesIO()
  a = np.asarray(image)
  Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(buf, format="PNG")
  return buf.getvalue()


STYLIZE = Endpoint("stylize", lambda parts, tool, settings: _parts_present(parts, ("image",)),
                   _stylize, lambda out, tool, req: (encode_png(out), "png"), items=lambda req: 1)
REPAIR = Endpoint("repair", lambda parts, tool, settings: _parts_present(parts, ("image", "mask")),
                  _repair, lambda out, tool, req: (encode_png(out[0]), "png"), items=lambda req: 1,
                  headers=lambda req, out: {"X-Artjax-Missing-Pixels": str(int(out[1].sum()))})
