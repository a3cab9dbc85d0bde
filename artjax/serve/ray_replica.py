"""The model side of `run.py serve --backend=ray`: the model replicas and their statistics.

ModelReplica  one replica of the `models` deployment: the models and tools loaded and
              compiled, image requests batched either by artjax's micro-batcher (LocalWork,
              `--ray_batching=artjax`, the default) or by Ray Serve's own `@serve.batch`
              (`--ray_batching=serve`: the same rows merged into the same bucketed calls, but
              Ray's queue decides when a batch leaves: when it is full or `--max_wait_ms`
              after its first request, even when no other request is coming).
StatsBoard    a named actor the replicas report to every second (cumulative rows-per-call
              counts, queue depth, compilations after warm-up), so the ingress's /metrics
              shows every replica's batches, not only its own process.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import numpy as np

from artjax.serve.batcher import row_chunks
from artjax.serve.counts import BatchCounts, merge_counts

STATS = "artjax_stats"     # the StatsBoard actor's name ...
NAMESPACE = "artjax"       # ... in this namespace
REPORT_S = 1.0             # how often a replica reports
FRESH_S = 10.0             # a replica silent this long no longer counts as serving
BATCHING = ("artjax", "serve")


class StatsBoard:
  """What every model replica last reported (made a Ray actor by the command)."""

  def __init__(self):
    self.board: dict[str, tuple[float, dict]] = {}

  def report(self, replica: str, stats: dict) -> None:
    self.board[replica] = (time.time(), stats)

  def merged(self) -> dict:
    """Counts summed over every replica ever seen (a dead replica's calls still happened);
    queue depth summed and compilations maxed over the replicas heard from recently."""
    now = time.time()
    fresh = [s for t, s in self.board.values() if now - t < FRESH_S]
    queue: dict[str, int] = {}
    for s in fresh:
      for name, depth in s["queue"].items():
        queue[name] = queue.get(name, 0) + depth
    return {"compiles_since_ready": max((s["compiles_since_ready"] for s in fresh), default=0),
            "queue": queue, "replicas": len(fresh),
            "batch": merge_counts([s["batch"] for _, s in self.board.values()])}


class ModelReplica:
  """One model replica (see the module docstring), called by the ingress through a
  DeploymentHandle: `describe()` and `call(method, *args)` with LocalWork's methods."""

  def __init__(self, args: dict):
    from artjax.serve.loading import load_all
    from artjax.serve.work import LocalWork
    models, tools = load_all(args["paths"], args["max_num"], args["max_batch"],
                             args["max_music"], args["image_size"])
    self.counts = BatchCounts()
    self.work = LocalWork(models, tools, args["max_batch"], args["max_wait_ms"],
                          observe=self.counts.observe)
    self.max_batch = args["max_batch"]
    self.batching = args.get("ray_batching", "artjax")
    self.rows = (self._serve_batch(args["max_batch"], args["max_wait_ms"] / 1000.0)
                 if self.batching == "serve" else None)
    self.pending = {n: 0 for n in models}   # chunks in Ray's batch queue (--ray_batching=serve)
    self.infos, self.reporter = None, None
    self.id = uuid.uuid4().hex[:12]

  def _serve_batch(self, max_batch: int, wait_s: float):
    from ray import serve

    async def rows(items):
      for i in items:
        self.pending[i[0]] -= 1
      return await asyncio.get_running_loop().run_in_executor(None, self._run_items, items)
    return serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=wait_s,
                       batch_size_fn=lambda items: sum(len(i[1]) for i in items))(rows)

  def _run_items(self, items: list) -> list:
    """Ray's batch of chunks (name, seeds, rows, labels): one bucketed call per model."""
    out = [None] * len(items)
    for name in dict.fromkeys(i[0] for i in items):
      idx = [k for k, i in enumerate(items) if i[0] == name]
      seeds, rows, labels = (np.concatenate([items[k][j] for k in idx]) for j in (1, 2, 3))
      self.counts.observe(name, len(seeds), self.pending[name])
      images = self.work.models[name].run_images(seeds, rows, labels)
      for k, part in zip(idx, np.split(images, np.cumsum([len(items[k][1]) for k in idx])[:-1])):
        out[k] = part
    return out

  async def _serve_images(self, name: str, seed: int, labels):
    chunks = [(name, *c) for c in row_chunks(seed, labels, self.max_batch)]
    self.pending[name] += len(chunks)
    return np.concatenate(await asyncio.gather(*(self.rows(c) for c in chunks)), 0)

  async def _started(self):
    if self.infos is None:     # batchers need the replica's event loop: started on first call
      self.infos = await self.work.start()
      self.reporter = asyncio.get_running_loop().create_task(self._report())
    return self.infos

  async def _report(self):
    import ray
    board = ray.get_actor(STATS, namespace=NAMESPACE)
    while True:
      stats = await self.work.stats()
      if self.batching == "serve":
        stats["queue"] = {n: self.pending.get(n, d) for n, d in stats["queue"].items()}
      try:
        await board.report.remote(self.id, {**stats, "batch": self.counts.snapshot()})
      except Exception as e:   # a lost report costs a second of metrics, never the replica
        print(f"artjax replica {self.id}: report failed ({type(e).__name__}); retrying",
              flush=True)
      await asyncio.sleep(REPORT_S)

  async def describe(self):
    models, tools = await self._started()
    return [m.describe() for m in models.values()], [t.describe() for t in tools.values()]

  async def call(self, method: str, *args):
    await self._started()
    fn = (self._serve_images if method == "images" and self.batching == "serve"
          else getattr(self.work, method))
    try:
      return ("ok", await fn(*args))
    except ValueError as e:    # a request the model cannot do (e.g. an empty mask): a 422
      return ("bad", str(e))
