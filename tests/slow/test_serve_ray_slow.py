"""`run.py serve --backend=ray`: the same app on Ray Serve. Scale-out from 1 to 2 model
replicas under load and back when idle, kill -9 of a model replica under load (every request
answered: retried on the other replica, or a 503 JSON; nothing hangs; the replica replaced),
results equal to the single process's, and SIGTERM drains and exits 0."""

import concurrent.futures
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import ROOT
from test_serve import AUTH, TOKEN, _free_port, _get, _npz

from artjax.serve import ray_replica

MODEL_REPLICA = "ServeReplica:artjax:models"


def _replicas(ready_only=True):
  out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
  rows = [l.split(None, 1) for l in out.splitlines() if MODEL_REPLICA in l]
  return [int(p) for p, a in rows if not ready_only or "initialize" not in a]


def _metric(text, name, le=None):
  """The sum of a metric's samples in /metrics text (one bucket: le='"1.0"')."""
  rows = [l for l in text.splitlines() if l.startswith(name) and (le is None or f"le={le}" in l)]
  return sum(float(l.split()[-1]) for l in rows)


def _until(cond, timeout, what):
  t = time.time()
  while not cond():
    assert time.time() - t < timeout, f"timed out waiting for {what}"
    time.sleep(0.5)


def _start(tmp_path, *flags):
  """`run.py serve --backend=ray *flags` on a free port, waited for until ready."""
  port = _free_port()
  log = open(tmp_path / "ray.log", "w")
  proc = subprocess.Popen([sys.executable, "run.py", "serve", "--backend=ray", f"--port={port}", *flags],
                          cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "ARTJAX_TOKEN": TOKEN})
  url = f"http://127.0.0.1:{port}"

  def ready():
    assert proc.poll() is None, (tmp_path / "ray.log").read_text()[-3000:]
    try:
      return _get(url + "/healthz", timeout=5)[0] == 200
    except OSError:
      return False
  try:
    _until(ready, 300, "the Ray deployment")
  except BaseException:
    proc.kill()
    log.close()
    raise
  return proc, url, log


class Load:
  """Closed-loop clients sending image requests until stopped; every answer is kept."""

  def __init__(self, url, clients=12):
    self.url, self.stop, self.answers = url, False, []
    self.pool = concurrent.futures.ThreadPoolExecutor(clients)
    self.futures = [self.pool.submit(self._client, i) for i in range(clients)]

  def _client(self, i):
    seed = i
    while not self.stop:
      status, body, headers = _get(self.url + "/v1/generate", {"num": 16, "seed": seed % 4, "format": "npz"},
                                   AUTH, timeout=60)
      self.answers.append((status, body if status != 200 else b"", headers.get("content-type", "")))
      seed += 1

  def finish(self):
    self.stop = True
    for f in self.futures:
      f.result(timeout=120)        # nothing hangs
    self.pool.shutdown()
    return self.answers


@pytest.mark.slow
def test_ray_backend_scales_survives_kill_9_and_drains(trained_workdir, repair_workdir, tmp_path):
  pytest.importorskip("ray.serve")
  from artjax.serve import models
  proc, url, log = _start(tmp_path, f"--workdir={trained_workdir}", f"--workdir={repair_workdir}",
                          "--max_replicas=2", "--target_ongoing=2", "--downscale_delay_s=8",
                          "--max_num=16", "--max_batch=16")
  try:
    assert len(_replicas()) == 1
    # the same app: auth, validation and results as the single process
    assert _get(url + "/v1/generate", {"num": 1})[0] == 401
    assert _get(url + "/v1/generate", {"num": 99}, AUTH)[0] == 422
    status, body, _ = _get(url + "/v1/generate", {"num": 6, "seed": 3, "format": "npz"}, AUTH)
    m = models.load(trained_workdir, "x", max_num=16, max_batch=16, max_music=1)
    assert status == 200 and np.array_equal(_npz(body)["images"],
                                            m.run_images(np.full(6, 3), np.arange(6), np.arange(6) % 10))

    load = Load(url)
    _until(lambda: len(_replicas()) == 2, 180, "a second model replica under load")
    time.sleep(3)
    victim = _replicas()[0]
    os.kill(victim, 9)                                     # kill -9 under load
    _until(lambda: len(_replicas()) >= 1 and victim not in _replicas(), 30, "the killed replica gone")
    time.sleep(5)
    answers = load.finish()
    codes = sorted({s for s, _, _ in answers})
    assert answers and set(codes) <= {200, 503}, codes
    bad = [(s, b, c) for s, b, c in answers if s != 200]
    assert all(c == "application/json" and b"error" in b for _, b, c in bad), bad[:3]
    assert len(bad) <= 0.05 * len(answers), (len(bad), len(answers))
    time.sleep(2 * ray_replica.REPORT_S)      # the replicas' batches reach /metrics
    text = _get(url + "/metrics")[1].decode()
    assert _metric(text, "artjax_batch_rows_count") > _metric(text, "artjax_batch_rows_bucket", '"1.0"')
    assert _metric(text, "artjax_model_replicas ") >= 1
    _until(lambda: len(_replicas()) >= 1, 120, "a replacement replica")
    _until(lambda: len(_replicas(ready_only=False)) == 1, 120, "scale-down to one replica when idle")
    assert _get(url + "/v1/generate", {"num": 2, "format": "npz"}, AUTH)[0] == 200

    proc.send_signal(15)
    assert proc.wait(timeout=120) == 0
    text = (tmp_path / "ray.log").read_text()
    assert "stopped: in-flight requests finished" in text and TOKEN not in text
  finally:
    if proc.poll() is None:
      proc.kill()
    log.close()


@pytest.mark.slow
def test_ray_serve_batch_merges_requests_into_the_same_rows(trained_workdir, tmp_path):
  """--ray_batching=serve: Ray Serve's @serve.batch merges concurrent requests (rows per call
  above 1, read from the replica's reports in /metrics), each request gets its own rows."""
  pytest.importorskip("ray.serve")
  from artjax.serve import models
  proc, url, log = _start(tmp_path, "--ray_batching=serve", f"--workdir={trained_workdir}",
                          "--max_num=16", "--max_batch=16", "--max_wait_ms=300")
  try:
    # Ray's queue holds a lone request for --max_wait_ms (artjax's batcher would not: nothing
    # else is arriving), so these requests did go through @serve.batch
    assert _get(url + "/v1/generate", {"num": 1}, AUTH)[0] == 200
    t = time.perf_counter()
    assert _get(url + "/v1/generate", {"num": 1}, AUTH)[0] == 200
    assert time.perf_counter() - t >= 0.3
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
      answers = list(pool.map(lambda i: _get(url + "/v1/generate", {"num": 3, "seed": i, "format": "npz"},
                                             AUTH), range(24)))
    m = models.load(trained_workdir, "x", max_num=16, max_batch=16, max_music=1)
    for i, (status, body, _) in enumerate(answers):
      assert status == 200, body
      want = m.run_images(np.full(3, i), np.arange(3), np.arange(3) % 10)
      diff = np.abs(_npz(body)["images"].astype(int) - want.astype(int))   # a 3-row call vs a merged one
      assert diff.max() <= 2 and (diff == 0).mean() > 0.98, (i, diff.max())
    time.sleep(2 * ray_replica.REPORT_S)
    text = _get(url + "/metrics")[1].decode()
    rows, calls = _metric(text, "artjax_batch_rows_sum"), _metric(text, "artjax_batch_rows_count")
    assert rows == 74 and 3 <= calls < 26, (rows, calls)      # every row counted, calls merged
    assert _metric(text, "artjax_model_replicas ") == 1
    assert _get(url + "/v1/generate", {"num": 99}, AUTH)[0] == 422
    proc.send_signal(15)
    assert proc.wait(timeout=120) == 0
  finally:
    if proc.poll() is None:
      proc.kill()
    log.close()


def _multipart(fields: dict) -> tuple[bytes, str]:
  boundary = "artjaxprobe"
  parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{k}.png"\r\n'
           f"Content-Type: image/png\r\n\r\n".encode() + v + b"\r\n" for k, v in fields.items()]
  return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _post(url, body, content_type, headers=None):
  import urllib.error
  import urllib.request
  req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type, **(headers or {})})
  try:
    with urllib.request.urlopen(req, timeout=60) as r:
      return r.status, r.read(), dict(r.headers)
  except urllib.error.HTTPError as e:
    return e.code, e.read(), dict(e.headers)


@pytest.mark.slow
def test_ray_backend_under_the_single_process_abuse(trained_workdir, repair_workdir, tmp_path):
  """Issue #47's probes against --backend=ray: Ray Serve's own HTTP proxy (not artjax's
  GuardedH11Protocol) in front of the same app. An idle-connection flood, a 256 KB header,
  idle keep-alive connections, bad tokens and Host headers, a decompression-bomb upload and a
  body past the limit: each refused or answered, the service never taken down."""
  pytest.importorskip("ray.serve")
  import json
  import socket
  from test_serve_access import _bomb
  from test_serve_slow import probe_big_head_and_idle_keep_alive
  proc, url, log = _start(tmp_path, f"--workdir={trained_workdir}", f"--workdir={repair_workdir}")
  port = int(url.rsplit(":", 1)[1])
  try:
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(400)]
    t = time.time()
    status = _get(url + "/v1/generate", {"num": 2, "format": "npz"}, AUTH, timeout=30)[0]
    assert status in (200, 503) and time.time() - t < 20, status
    for s in idle:
      s.close()
    probe_big_head_and_idle_keep_alive(port)
    # tokens as the single process answers them (test_serve.py::test_auth); never logged
    for headers, want in (({}, 401), ({"Authorization": "Bearer wrong"}, 403),
                          ({"Authorization": "Basic " + TOKEN}, 401)):
      status, body, h = _get(url + "/v1/generate", {"num": 1}, headers)
      assert status == want and "error" in json.loads(body), (headers, status, body[:200])
    # uploads: a PNG claiming 10^10 pixels and a body past the limit are JSON 4xx
    body, ctype = _multipart({"image": _bomb(), "mask": _bomb()})
    status, reply, _ = _post(url + "/v1/repair", body, ctype, AUTH)
    assert status == 413 and "pixels" in json.loads(reply)["error"], (status, reply[:200])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:   # 64 MiB announced
      s.sendall(f"POST /v1/repair HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH['Authorization']}"
                f"\r\nContent-Type: {ctype}\r\nContent-Length: {64 << 20}\r\n\r\n".encode() + body)
      reply = s.recv(65536)
      while b"}" not in reply.partition(b"\r\n\r\n")[2] and (more := s.recv(65536)):
        reply += more
    assert reply.split(b" ")[1] == b"413" and b'"error"' in reply, reply[:300]
    assert _get(url + "/v1/generate", {"num": 2, "format": "npz"}, AUTH)[0] == 200
    assert proc.poll() is None
    proc.send_signal(15)
    assert proc.wait(timeout=120) == 0
    assert TOKEN not in (tmp_path / "ray.log").read_text()
  finally:
    if proc.poll() is None:
      proc.kill()
    log.close()
