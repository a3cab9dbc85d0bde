"""Where a request's model work runs, behind one interface the HTTP app awaits.

LocalWork: in this process (a micro-batcher per generator, style / inpainting tools one call at
a time on a worker thread). The Ray backend's model replicas each hold a LocalWork, and the
HTTP ingress holds a `RemoteWork` (artjax.serve.ray_backend) with the same methods.

Every backend has the same methods: `start()` returns the served models and tools as `Info`s
(what the app validates requests against: kind, limits, classes, without holding the models
themselves); `stop()`; one coroutine per kind of work (images, music, animate, poems, stylize,
repair); `stats()`; `reports_batches` (whether its batches run in this process, so the app's
own histogram observes them) and `attach(observe, arriving)` (how the app hears of batches
and tells of requests still arriving; a backend whose batches run elsewhere ignores it).
"""

from __future__ import annotations

import asyncio
import dataclasses

from artjax.serve.batcher import Batcher
from artjax.serve.served import compiles


@dataclasses.dataclass(frozen=True)
class Info:
  """What the HTTP layer knows of a served model: its `describe()` dict and the fields that
  requests are checked against."""
  name: str
  kind: str              # "images" | "music" | "poems" | "stylize" | "repair"
  step: int
  max_num: int
  num_classes: int
  description: dict

  def describe(self) -> dict:
    return dict(self.description)

  @staticmethod
  def of(description: dict) -> "Info":
    d = description
    return Info(d["name"], d["kind"], int(d["step"]), int(d.get("max_num", 1)),
                int(d.get("num_classes", 0)), dict(d))


def describe_all(models: dict, tools: dict) -> tuple[list, list]:
  return [m.describe() for m in models.values()], [t.describe() for t in tools.values()]


class LocalWork:
  """Runs requests in this process (see the module docstring)."""

  reports_batches = True

  def __init__(self, models: dict, tools: dict, max_batch: int, max_wait_ms: float,
               observe=None, arriving=None):
    self.models, self.tools = models, tools
    self.max_batch, self.max_wait_ms = max_batch, max_wait_ms
    self.observe, self.arriving = observe, arriving
    self.batchers: dict[str, Batcher] = {}
    self.compiles_at_start = compiles()

  def attach(self, observe, arriving) -> None:
    """The app's batch observer and arrival count, unless the owner gave its own (a Ray
    replica counts its batches itself)."""
    if self.observe is None:
      self.observe, self.arriving = observe, arriving

  async def start(self) -> tuple[dict, dict]:
    for name, m in self.models.items():
      b = Batcher(m, self.max_batch, self.max_wait_ms, self.observe, arriving=self.arriving)
      b.start()
      self.batchers[name] = b
    self.compiles_at_start = compiles()
    models, tools = describe_all(self.models, self.tools)
    return ({d["name"]: Info.of(d) for d in models}, {d["name"]: Info.of(d) for d in tools})

  async def stop(self) -> None:
    for b in self.batchers.values():
      await b.stop()

  async def images(self, name: str, seed: int, labels):
    return await self.batchers[name].rows(seed, labels)

  async def music(self, name: str, seed: int, modes, key_guidance: float):
    return await self.batchers[name].one(seed, modes, key_guidance)

  async def animate(self, name: str, seed: int, frames: int, label: int):
    """uint8 [frames, H, W, C] of a model's latent walk (/v1/animate)."""
    return await self._thread(self.models[name].run_walk, seed, frames, label)

  async def poems(self, name: str, request: dict) -> list[str]:
    """The poems of a /v1/poems request (form, strict, acrostic, prime, author, num, seed),
    or ValueError(reason) for one the model cannot write."""
    return await self._thread(self.models[name].run_request, request)

  async def _thread(self, fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

  async def stylize(self, name: str, image):
    return await self._thread(self.tools[name].stylize, image)

  async def repair(self, name: str, image, mask):
    """(repaired uint8, missing) or ValueError(reason) for a mask with nothing to do."""
    return await self._thread(self.tools[name].repair, image, mask)

  async def stats(self) -> dict:
    return {"compiles_since_ready": compiles() - self.compiles_at_start,
            "queue": {n: b.depth() for n, b in self.batchers.items()}}
