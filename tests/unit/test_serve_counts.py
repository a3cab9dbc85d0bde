"""The Ray backend's batch statistics without Ray: a replica's counts, the board that merges
every replica's reports, and the /metrics histogram they become, which must read exactly as
the single process's own histogram of the same calls."""

import prometheus_client as prom

from artjax.serve import app, ray_replica
from artjax.serve.counts import BATCH_BUCKETS, BatchCounts, merge_counts


def _samples(registry):
  return sorted((s.name, tuple(sorted(s.labels.items())), s.value)
                for f in registry.collect() for s in f.samples if not s.name.endswith("_created"))


def test_replica_counts_read_as_the_single_process_histogram():
  calls = [("a", 1), ("a", 8), ("b", 64), ("a", 3), ("b", 300), ("a", 8)]
  # the single process: one histogram observing each call
  local = prom.CollectorRegistry()
  h = prom.Histogram("artjax_batch_rows", "Rows per compiled call", ["model"],
                     buckets=BATCH_BUCKETS, registry=local)
  for name, rows in calls:
    h.labels(name).observe(rows)
  # two replicas splitting the same calls, merged, through the Ray backend's collector
  one, two = BatchCounts(), BatchCounts()
  for i, (name, rows) in enumerate(calls):
    (one, two)[i % 2].observe(name, rows, depth=i)
  registry, metric = app._metrics(local=False)
  metric["batch"].counts = merge_counts([one.snapshot(), two.snapshot()])
  got = [s for s in _samples(registry) if s[0].startswith("artjax_batch_rows")]
  assert got == _samples(local)
  assert dict((s[1], s[2]) for s in got if s[0] == "artjax_batch_rows_sum")[(("model", "a"),)] == 20


def test_board_keeps_dead_replicas_counts_but_not_their_queue(monkeypatch):
  board, now = ray_replica.StatsBoard(), [1000.0]
  monkeypatch.setattr(ray_replica.time, "time", lambda: now[0])
  live, dead = BatchCounts(), BatchCounts()
  live.observe("m", 4, 2)
  dead.observe("m", 16, 5)
  board.report("dead", {"queue": {"m": 5}, "compiles_since_ready": 3, "batch": dead.snapshot()})
  now[0] += ray_replica.FRESH_S + 1
  board.report("live", {"queue": {"m": 2}, "compiles_since_ready": 0, "batch": live.snapshot()})
  m = board.merged()
  assert m["replicas"] == 1 and m["queue"] == {"m": 2} and m["compiles_since_ready"] == 0
  assert m["batch"]["m"]["count"] == 2 and m["batch"]["m"]["sum"] == 20   # calls that happened
  board.report("dead", {"queue": {"m": 1}, "compiles_since_ready": 3, "batch": dead.snapshot()})
  m = board.merged()
  assert m["replicas"] == 2 and m["queue"] == {"m": 3} and m["compiles_since_ready"] == 3
  # a replica's later report replaces its earlier one (cumulative counts, not added twice)
  assert m["batch"]["m"]["count"] == 2
