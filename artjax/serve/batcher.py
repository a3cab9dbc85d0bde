"""Micro-batching: concurrent requests for one model become one compiled call.

An image request of n rows is split into chunks of at most `max_batch` rows; the model's
worker takes every waiting chunk (up to `max_batch` rows) and, while more requests are
still arriving (being read and checked), waits up to `max_wait_ms` for them; then it runs
the rows as one call on a worker thread (the event loop keeps serving) and hands each chunk
its rows. A lone request never waits; under load, requests that arrive during a call form
the next one. Every row carries its own request's seed and row
index, so a result never depends on what it was batched with. A model whose rows do not
merge (`merges_rows` False: music, whose sampler draws a whole batch from one seed) runs one
call per request, queued through the same worker.
"""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np


def row_chunks(seed: int, labels, max_batch: int) -> list:
  """One request's rows as (seeds, rows, labels) int32 chunks of at most `max_batch` rows."""
  n = len(labels)
  return [(np.full(min(n, lo + max_batch) - lo, seed, np.int32),
           np.arange(lo, min(n, lo + max_batch), dtype=np.int32),
           np.asarray(labels[lo:lo + max_batch], np.int32)) for lo in range(0, n, max_batch)]


@dataclasses.dataclass
class Chunk:
  rows: int
  args: tuple            # merged rows: (seeds, rows, labels); else `run_request`'s arguments
  future: asyncio.Future


class Batcher:
  """One worker per model; `submit` from request handlers (see the module docstring)."""

  def __init__(self, model, max_batch: int, max_wait_ms: float, observe=None, arriving=None):
    self.model, self.max_batch = model, max_batch
    self.arriving = arriving or (lambda: 0)
    self.max_wait = max_wait_ms / 1000.0
    self.queue: asyncio.Queue = asyncio.Queue()
    self.observe = observe or (lambda model, rows, queued: None)
    self.carry = None
    self.task = None

  def start(self) -> None:
    self.task = asyncio.get_running_loop().create_task(self._work())

  async def stop(self) -> None:
    if self.task:
      self.task.cancel()

  def depth(self) -> int:
    return self.queue.qsize() + (self.carry is not None)

  async def rows(self, seed: int, labels) -> np.ndarray:
    """uint8 images of one request: rows 0..n-1 of seed `seed` with `labels`."""
    loop = asyncio.get_running_loop()
    chunks = [Chunk(len(args[0]), args, loop.create_future())
              for args in row_chunks(seed, labels, self.max_batch)]
    for c in chunks:
      self.queue.put_nowait(c)
    parts = await asyncio.gather(*(c.future for c in chunks))
    return np.concatenate(parts, 0)

  async def one(self, *args) -> np.ndarray:
    """A request of a model whose rows do not merge: one call of `model.run_request(*args)`
    (its rows: the length of the second argument)."""
    c = Chunk(len(args[1]), args, asyncio.get_running_loop().create_future())
    self.queue.put_nowait(c)
    return await c.future

  async def _next(self, timeout=None):
    if self.carry is not None:
      c, self.carry = self.carry, None
      return c
    if timeout is None:
      return await self.queue.get()
    return await asyncio.wait_for(self.queue.get(), timeout)

  async def _gather(self):
    first = await self._next()
    batch, rows = [first], first.rows
    if not self.model.merges_rows:
      return batch
    loop = asyncio.get_running_loop()
    deadline = loop.time() + self.max_wait
    while rows < self.max_batch:
      left = deadline - loop.time()
      try:
        if self.queue.empty() and (left <= 0 or not self.arriving()):
          break
        c = self.queue.get_nowait() if not self.queue.empty() else await self._next(
            min(left, 0.0005))
      except asyncio.TimeoutError:
        continue
      if rows + c.rows > self.max_batch:
        self.carry = c
        break
      batch.append(c)
      rows += c.rows
    return batch

  def _call(self, batch):
    if not self.model.merges_rows:
      return [self.model.run_request(*batch[0].args)]
    seeds, rows, labels = (np.concatenate([c.args[i] for c in batch]) for i in range(3))
    out = self.model.run_images(seeds, rows, labels)
    return np.split(out, np.cumsum([c.rows for c in batch])[:-1])

  async def _work(self):
    loop = asyncio.get_running_loop()
    while True:
      batch = await self._gather()
      self.observe(self.model.name, sum(c.rows for c in batch), self.depth())
      try:
        results = await loop.run_in_executor(None, self._call, batch)
      except Exception as e:   # a failed call fails its requests, not the worker
        for c in batch:
          if not c.future.done():
            c.future.set_exception(e)
        continue
      for c, r in zip(batch, results):
        if not c.future.done():
          c.future.set_result(r)
