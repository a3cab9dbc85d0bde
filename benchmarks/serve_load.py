"""Load test of `run.py serve` on loopback: closed-loop clients (each sends its next request
when the previous one returns) at several concurrencies for a fixed time each, requests of
8 images (npz), with micro-batching on (`--max_batch=64 --max_wait_ms=5`) and off
(`--max_batch=1`: one image row per compiled call). Reports requests/s, images/s,
p50/p95/p99 latency, errors, and the mean rows per compiled call (from /metrics).

  python benchmarks/serve_load.py [--workdir=runs/digits] [--seconds=20]
                                  [--concurrency=1,8,32,64] [--num=8] [--backend=ray]

--backend=ray compares the single process with Ray Serve: 1 model replica batching with
artjax's micro-batcher or with Ray Serve's @serve.batch (`--ray_batching=serve`), and 1-2
replicas. Rows per call come from /metrics, where the ingress sums the model replicas'
reports (sent every second: the benchmark waits for the next one before reading).

The clients are asyncio streams in this process (HTTP/1.1 keep-alive, one connection per
client); the server is a subprocess. Both share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np

from benchmarks import common

TOKEN = "load-test-token"
MODES = {"micro-batching on": ["--max_batch=64", "--max_wait_ms=5"],
         "micro-batching off": ["--max_batch=1", "--max_wait_ms=0"]}
# --backend=ray: the single process beside Ray Serve (ingress + model replicas), batching on
RAY_MODES = {"uvicorn, 1 process": MODES["micro-batching on"],
             "ray, 1 model replica": ["--backend=ray", *MODES["micro-batching on"]],
             "ray, 1 model replica, @serve.batch": ["--backend=ray", "--ray_batching=serve",
                                                    *MODES["micro-batching on"]],
             "ray, 1-2 model replicas": ["--backend=ray", "--max_replicas=2", "--target_ongoing=4",
                                         *MODES["micro-batching on"]]}


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start(workdir: str, flags, port: int):
  proc = subprocess.Popen([sys.executable, "run.py", "serve", f"--workdir={workdir}",
                           f"--port={port}", f"--token={TOKEN}", *flags], cwd=common.ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 600
  while time.time() < deadline:
    try:
      with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
        if r.status == 200:
          return proc
    except OSError:
      if proc.poll() is not None:
        raise SystemExit(f"server failed: {proc.stderr.read()}")
      time.sleep(0.5)
  proc.kill()
  raise SystemExit("server did not become ready")


async def client(port: int, body: bytes, stop_at: float, latencies: list, errors: list):
  reader, writer = await asyncio.open_connection("127.0.0.1", port)
  head = (f"POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
  try:
    while time.perf_counter() < stop_at:
      t = time.perf_counter()
      writer.write(head + body)
      await writer.drain()
      status = int((await reader.readline()).split()[1])
      length = 0
      while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
          length = int(line.split(b":")[1])
      await reader.readexactly(length)
      (latencies if status == 200 else errors).append(time.perf_counter() - t)
  finally:
    writer.close()


async def load(port: int, concurrency: int, seconds: float, num: int) -> dict:
  latencies, errors = [], []
  stop_at = time.perf_counter() + seconds
  t = time.perf_counter()
  await asyncio.gather(*(client(port, json.dumps({"num": num, "seed": i, "format": "npz"}).encode(),
                                stop_at, latencies, errors) for i in range(concurrency)))
  wall = time.perf_counter() - t
  lat = np.asarray(latencies) * 1000
  return {"concurrency": concurrency, "requests": len(latencies), "errors": len(errors),
          "wall_s": wall, "requests_per_s": len(latencies) / wall,
          "images_per_s": len(latencies) * num / wall,
          **{f"p{q}_ms": float(np.percentile(lat, q)) if len(lat) else None for q in (50, 95, 99)}}


def call_stats(port: int) -> tuple[float, float]:
  """(image rows, compiled calls) so far, from the server's /metrics."""
  with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
    text = r.read().decode()
  get = lambda name: sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith(name))
  return get("artjax_batch_rows_sum"), get("artjax_batch_rows_count")


def _rows_per_call(before, after):
  calls = after[1] - before[1]
  return (after[0] - before[0]) / calls if calls > 0 else None


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("--workdir", default="runs/digits")
  p.add_argument("--seconds", type=float, default=20)
  p.add_argument("--concurrency", default="1,8,32,64")
  p.add_argument("--num", type=int, default=8)
  p.add_argument("--backend", default="uvicorn", choices=("uvicorn", "ray"))
  args = p.parse_args(argv)
  rows = []
  for mode, flags in (RAY_MODES if args.backend == "ray" else MODES).items():
    port = free_port()
    proc = start(args.workdir, flags, port)
    try:
      for c in (int(x) for x in args.concurrency.split(",")):
        before = call_stats(port)
        r = {"mode": mode, **asyncio.run(load(port, c, args.seconds, args.num))}
        if args.backend == "ray":
          time.sleep(2.5)          # the replicas' next report (ray_replica.REPORT_S)
        r["rows_per_call"] = _rows_per_call(before, call_stats(port))
        rows.append(r)
        print(json.dumps(r), flush=True)
    finally:
      proc.send_signal(signal.SIGTERM)
      code = proc.wait(timeout=60)
    rows[-1]["server_exit_code"] = code
  on = {r["concurrency"]: r for r in rows if r["mode"] == "micro-batching on"}
  off = {r["concurrency"]: r for r in rows if r["mode"] == "micro-batching off"}
  speedup = {c: on[c]["images_per_s"] / off[c]["images_per_s"] for c in on if c in off}
  result = {"machine": common.machine(), "args": vars(args), "rows": rows,
            "images_per_s_speedup_from_batching": speedup}
  common.save("serve_load" if args.backend == "uvicorn" else "serve_load_ray", result)
  print("| mode | clients | requests/s | images/s | p50 ms | p95 ms | p99 ms | errors | rows/call |")
  print("|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['mode']} | {r['concurrency']} | {r['requests_per_s']:.0f} | {r['images_per_s']:.0f} | "
          f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | "
          f"{'-' if r['rows_per_call'] is None else format(r['rows_per_call'], '.1f')} |")
  if speedup:
    print("images/s speed-up from micro-batching: " +
          ", ".join(f"{c} clients {s:.1f}x" for c, s in speedup.items()))


if __name__ == "__main__":
  main()
