"""Rows-per-call counts that travel between processes (no jax, no numpy): a Ray model
replica counts its compiled calls here and reports the snapshot; the ingress's /metrics sums
every replica's (artjax.serve.ray_replica.StatsBoard) into the same `artjax_batch_rows`
histogram the single process exports."""

from __future__ import annotations

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)    # rows per compiled call (histogram)


class BatchCounts:
  """Rows per compiled call, per model, as cumulative histogram counts: what a Ray model
  replica reports (its batches happen in another process than /metrics)."""

  def __init__(self):
    self.models: dict[str, dict] = {}

  def observe(self, name: str, rows: int, depth: int = 0) -> None:
    """A Batcher's `observe` callback (the queue depth is reported apart: work.stats)."""
    m = self.models.setdefault(name, {"buckets": [0] * len(BATCH_BUCKETS), "sum": 0,
                                      "count": 0})
    for i, le in enumerate(BATCH_BUCKETS):
      m["buckets"][i] += rows <= le
    m["sum"] += rows
    m["count"] += 1

  def snapshot(self) -> dict:
    return {n: {**m, "buckets": list(m["buckets"])} for n, m in self.models.items()}


def merge_counts(snapshots: list) -> dict:
  """Several replicas' BatchCounts snapshots summed per model."""
  out: dict[str, dict] = {}
  for snap in snapshots:
    for n, m in snap.items():
      o = out.setdefault(n, {"buckets": [0] * len(BATCH_BUCKETS), "sum": 0, "count": 0})
      o["buckets"] = [a + b for a, b in zip(o["buckets"], m["buckets"])]
      o["sum"] += m["sum"]
      o["count"] += m["count"]
  return out
