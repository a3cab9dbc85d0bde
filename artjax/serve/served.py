"""What every served generator is, whatever its modality: the `Model` base (its modality
subclasses it: artjax.serve.images, .music, .poems), the batch sizes it compiles, and the
process's compile counter (the proof that no request compiles once the service is ready)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax


class CompileCounter:
  """XLA compilations in this process since the counter was installed (an executable loaded
  from the persistent compilation cache is a new program too): the service's proof that no
  request compiles once it is ready."""

  def __init__(self):
    self.count = 0
    jax.monitoring.register_event_duration_secs_listener(self._compile)
    jax.monitoring.register_event_listener(self._cache_hit)

  def _compile(self, event: str, duration: float, **_) -> None:
    if event == "/jax/core/compile/backend_compile_duration":
      self.count += 1

  def _cache_hit(self, event: str, **_) -> None:
    if event == "/jax/compilation_cache/cache_hits":
      self.count += 1


_COUNTER: list = []      # JAX's listeners are per process: one counter, made on first use


def compiles() -> int:
  """Compilations since the first call (the service calls it before loading any model)."""
  if not _COUNTER:
    _COUNTER.append(CompileCounter())
  return _COUNTER[0].count


def buckets(max_rows: int) -> tuple:
  out, b = [], 1
  while b < max_rows:
    out.append(b)
    b *= 2
  return tuple(out + [max_rows])


@dataclasses.dataclass
class Model:
  """One served generator (see the module docstring); its modality (artjax.serve.images,
  .music, .poems) subclasses it with the calls it runs and its warm-up."""
  name: str
  kind: str              # the modality: "images" | "music" | "poems"
  manifest: dict
  fn: object             # jitted exported call
  buckets: tuple
  max_num: int           # most rows (images / pieces / poems) one request may ask for
  num_classes: int = 0   # image GANs: 0 = unconditional

  #: rows of different requests may share one call (the batcher merges them: `run_images`);
  #: otherwise a request is one call (`run_request`)
  merges_rows: ClassVar[bool] = False
  #: the answer formats of this modality
  formats: ClassVar[tuple] = ()

  @property
  def step(self) -> int:
    return int(self.manifest["step"])

  def describe(self) -> dict:
    return {"name": self.name, "kind": self.kind,
            "model": self.manifest["model"], "step": self.step,
            "weights_bits": self.manifest["weights"]["bits"], "max_num": self.max_num,
            "num_classes": self.num_classes, "buckets": list(self.buckets),
            "formats": list(self.formats), "animates": False}

  def bucket(self, rows: int) -> int:
    return next(b for b in self.buckets if b >= rows)

  def run_request(self, *args):
    """One request's answer in one call (a model whose rows do not merge)."""
    raise NotImplementedError

  def warm_up(self) -> None:
    """Compiles every batch size (and any other program) before the service is ready."""
    raise NotImplementedError
