"""`run.py serve`: the API in-process (auth, validation, results equal `run.py sample`, no
recompiles) and, marked slow, a live server on 127.0.0.1 (concurrency, batching
independence, SIGTERM) and the web page in headless chromium."""

import concurrent.futures
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile

import numpy as np
import pytest

from helpers import ROOT, run_cli

TOKEN = "test-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def export_dir(trained_workdir, tmp_path_factory):
  out = tmp_path_factory.mktemp("serve") / "exported"
  assert run_cli("export", f"--workdir={trained_workdir}", f"--out={out}").returncode == 0
  return out


@pytest.fixture(scope="module")
def client(trained_workdir, music_workdir, export_dir):
  from starlette.testclient import TestClient
  from artjax.serve import app, models
  loaded = {}
  for name, path in zip(("digits", "music", "exported"), (trained_workdir, music_workdir, export_dir)):
    m = models.load(str(path), name, max_num=16, max_batch=16, max_music=4)
    m.warm_up()
    loaded[name] = m
  with TestClient(app.create_app(loaded, app.Settings(token=TOKEN, max_batch=16, max_body=2048))) as c:
    yield c


def _npz(content):
  return np.load(io.BytesIO(content))


def test_health_and_metrics_need_no_token(client):
  h = client.get("/healthz")
  assert h.status_code == 200 and h.json()["ready"] is True
  kinds = {m["name"]: m["kind"] for m in h.json()["models"]}
  assert kinds == {"digits": "images", "music": "music", "exported": "images"}
  assert "artjax_requests_total" in client.get("/metrics").text


@pytest.mark.parametrize("headers, status", [({}, 401), ({"Authorization": "Bearer nope-nope-nope"}, 403),
                                             ({"Authorization": "Basic abc"}, 401)])
def test_auth(client, headers, status):
  r = client.post("/v1/generate", json={"num": 1}, headers=headers)
  assert r.status_code == status and "error" in r.json()


@pytest.mark.parametrize("body, status, words", [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (json.dumps({"num": "3"}).encode(), 422, "'num' must be an integer"),
    (json.dumps({"num": 17}).encode(), 422, "'num' must be in 1..16"),
    (json.dumps({"num": 2, "labels": [1, 10]}).encode(), 422, "label 10 is out of range 0..9"),
    (json.dumps({"num": 2, "labels": [1]}).encode(), 422, "'labels' has 1 entries"),
    (json.dumps({"model": "nope"}).encode(), 404, "unknown model 'nope'"),
    (json.dumps({"format": "gif"}).encode(), 422, "unknown format 'gif'"),
    (json.dumps({"seed": -1}).encode(), 422, "'seed' must be in"),
    (json.dumps({"path": "/etc/passwd"}).encode(), 422, "unknown field 'path'"),
    (json.dumps({"model": "music", "num": 2, "format": "wav"}).encode(), 422, "num=1 or format 'zip'"),
    (json.dumps({"model": "music", "mode": "dorian"}).encode(), 422, "'mode' must be"),
    (b"{" + b" " * 4000 + b"}", 413, "body over 2048 bytes"),
])
def test_bad_requests_are_json_4xx(client, body, status, words):
  r = client.post("/v1/generate", content=body, headers={**AUTH, "Content-Type": "application/json"})
  assert r.status_code == status, r.text
  assert words in r.json()["error"]


def test_unknown_route_and_method_are_json(client):
  assert client.get("/v2/nothing").status_code == 404 and "error" in client.get("/v2/nothing").json()
  r = client.get("/v1/generate", headers=AUTH)
  assert r.status_code == 405 and "error" in r.json()


def test_images_equal_run_py_sample_from_workdir_and_export(client, trained_workdir, tmp_path):
  ref = run_cli("sample", f"--workdir={trained_workdir}", "--num=12", "--seed=5",
                f"--out={tmp_path / 's.npz'}")
  assert ref.returncode == 0
  ref = np.load(tmp_path / "s.npz")
  for model in ("digits", "exported"):
    r = client.post("/v1/generate", json={"model": model, "num": 12, "seed": 5, "format": "npz"},
                    headers=AUTH)
    assert r.status_code == 200 and r.headers["x-artjax-seed"] == "5"
    got = _npz(r.content)
    assert np.array_equal(got["images"], ref["images"]) and np.array_equal(got["labels"], ref["labels"])
  png = client.post("/v1/generate", json={"num": 4, "seed": 1}, headers=AUTH)
  assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_labels_and_concurrent_requests_batch_independently(client):
  compiles = client.get("/healthz").json()["compiles_since_ready"]
  solo = {}
  for seed in range(6):
    body = {"num": 3 + seed, "seed": seed, "labels": [seed % 10] * (3 + seed), "format": "npz"}
    solo[seed] = _npz(client.post("/v1/generate", json=body, headers=AUTH).content)["images"]
    assert solo[seed].shape[0] == 3 + seed
  with concurrent.futures.ThreadPoolExecutor(6) as pool:
    futures = {s: pool.submit(client.post, "/v1/generate", json={
        "num": 3 + s, "seed": s, "labels": [s % 10] * (3 + s), "format": "npz"}, headers=AUTH)
        for s in range(6)}
  for s, f in futures.items():
    assert np.array_equal(_npz(f.result().content)["images"], solo[s])
  assert client.get("/healthz").json()["compiles_since_ready"] == compiles   # nothing recompiled


def test_music_formats(client):
  r = client.post("/v1/generate", json={"model": "music", "num": 2, "seed": 1}, headers=AUTH)
  assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
  names = sorted(zipfile.ZipFile(io.BytesIO(r.content)).namelist())
  assert names == ["piece_000.mid", "piece_000.wav", "piece_001.mid", "piece_001.wav"]
  wav = client.post("/v1/generate", json={"model": "music", "format": "wav", "key_guidance": 2.0},
                    headers=AUTH)
  assert wav.content[:4] == b"RIFF" and wav.content[8:12] == b"WAVE"
  midi = client.post("/v1/generate", json={"model": "music", "format": "midi", "seed": 1}, headers=AUTH)
  assert midi.content[:4] == b"MThd"


def test_music_mood_sets_mode_tempo_and_register(client):
  """"mood": "V,A" -> the minor request of the same seed, moved 4 semitones down, at 65 BPM."""
  import mido
  from artjax.music import encoding as enc, render
  sad = client.post("/v1/generate", json={"model": "music", "format": "midi", "seed": 3,
                                          "mood": "-0.7,-0.5"}, headers=AUTH)
  minor = client.post("/v1/generate", json={"model": "music", "format": "midi", "seed": 3,
                                            "mode": "minor"}, headers=AUTH)
  assert sad.status_code == minor.status_code == 200
  a, b = (mido.MidiFile(file=io.BytesIO(r.content)) for r in (sad, minor))
  tempo = lambda f: [m.tempo for m in f.tracks[0] if m.type == "set_tempo"][0]
  assert abs(mido.tempo2bpm(tempo(a)) - 80 * 1.5 ** -0.5) < 0.1 and mido.tempo2bpm(tempo(b)) == 80
  notes = lambda f: sorted(m.note for t in f.tracks for m in t if m.type == "note_on" and m.velocity)
  na, nb = notes(a), notes(b)
  assert na and na == [n - 4 for n in nb if n - 4 >= 21]   # every note 4 semitones down
  for body, words in (({"mood": "-0.7,-0.5", "mode": "minor"}, "give 'mood' or 'mode'"),
                      ({"mood": "3,0"}, "[-1, 1]"), ({"mood": "sad"}, "VALENCE,AROUSAL")):
    r = client.post("/v1/generate", json={"model": "music", **body}, headers=AUTH)
    assert r.status_code == 422 and words in r.json()["error"], r.text


def test_start_up_errors_are_one_line(tmp_path):
  r = run_cli("serve", f"--workdir={tmp_path / 'missing'}")
  assert r.returncode == 2 and r.stderr.strip() == f"error: --workdir '{tmp_path / 'missing'}' does not exist"
  r = run_cli("serve", f"--workdir={tmp_path}", "--host=0.0.0.0")
  assert r.returncode == 2 and "without a token" in r.stderr
  r = run_cli("serve")
  assert r.returncode == 2 and "at least one --workdir" in r.stderr


# --- a live server ----------------------------------------------------------------------
def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _get(url, body=None, headers=None, timeout=60):
  req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                               headers={"Content-Type": "application/json", **(headers or {})})
  try:
    with urllib.request.urlopen(req, timeout=timeout) as r:
      return r.status, r.read(), dict(r.headers)
  except urllib.error.HTTPError as e:
    return e.code, e.read(), dict(e.headers)


@pytest.fixture(scope="module")
def live(trained_workdir, music_workdir, repair_workdir, poetry_workdir, tmp_path_factory):
  port = _free_port()
  log = tmp_path_factory.mktemp("live") / "server.log"
  f = open(log, "w")
  proc = subprocess.Popen([sys.executable, "run.py", "serve", f"--workdir={trained_workdir}",
                           f"--workdir={music_workdir}", f"--workdir={repair_workdir}",
                           f"--workdir={poetry_workdir}", f"--port={port}", "--max_batch=16",
                           "--max_num=16", "--max_wait_ms=20"], cwd=ROOT, stdout=f,
                          stderr=subprocess.STDOUT, env={**os.environ, "ARTJAX_TOKEN": TOKEN})
  url = f"http://127.0.0.1:{port}"
  deadline = time.time() + 240
  while time.time() < deadline:
    try:
      if _get(url + "/healthz", timeout=2)[0] == 200:
        break
    except OSError:
      time.sleep(0.5)
  else:
    proc.kill()
    pytest.fail("server did not become ready: " + log.read_text())
  yield url, proc, log
  if proc.poll() is None:
    proc.kill()
  f.close()


def test_quantised_workdir_is_served_like_run_py_sample(trained_workdir, tmp_path):
  from artjax.serve import models
  q = tmp_path / "int8"
  assert run_cli("quantize", f"--workdir={trained_workdir}", f"--out={q}").returncode == 0
  assert run_cli("sample", f"--workdir={q}", "--num=6", "--seed=9", f"--out={tmp_path / 's.npz'}").returncode == 0
  m = models.load(str(q), "int8", max_num=8, max_batch=8, max_music=4)
  assert m.describe()["weights_bits"] == 8
  got = m.run_images(np.full(6, 9), np.arange(6), np.arange(6) % 10)
  assert np.array_equal(got, np.load(tmp_path / "s.npz")["images"])


def _gif_frames(content):
  from PIL import Image, ImageSequence
  return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(io.BytesIO(content)))])


def test_v1_animate_equals_run_py_animate(client, trained_workdir, tmp_path):
  before = client.get("/healthz").json()["compiles_since_ready"]
  body = {"model": "digits", "seed": 3, "seconds": 1, "fps": 6, "size": 8, "format": "gif"}
  r = client.post("/v1/animate", json=body, headers=AUTH)
  assert r.status_code == 200 and r.headers["content-type"] == "image/gif", r.text
  served = _gif_frames(r.content)
  mp4 = client.post("/v1/animate", json={**body, "model": "exported", "format": "mp4", "size": 32},
                    headers=AUTH)
  assert mp4.status_code == 200 and mp4.content[4:8] == b"ftyp"
  assert client.get("/healthz").json()["compiles_since_ready"] == before   # no request compiles
  out = tmp_path / "walk.gif"
  assert run_cli("animate", f"--workdir={trained_workdir}", f"--out={out}", "--seconds=1",
                 "--fps=6", "--size=8", "--seed=3").returncode == 0
  from PIL import Image
  expected = _gif_frames(out.read_bytes())
  assert served.shape == expected.shape == (6, 8, 8, 3)
  assert np.array_equal(served, expected)
  assert np.abs(np.diff(served.astype(int), axis=0)).mean() > 0     # it moves


@pytest.mark.parametrize("body, status, words", [
    ({"fps": 0}, 422, "'fps' must be in 1..30"),
    ({"seconds": 100, "fps": 30}, 422, "frames; this service makes videos of 2..240"),
    ({"seconds": 10, "fps": 24, "size": 512}, 422, "pixels per video"),
    ({"format": "avi"}, 422, "choose mp4 or gif"),
    ({"label": 10}, 422, "'label' must be in 0..9"),
    ({"model": "music"}, 404, "unknown model 'music' for /v1/animate"),
    ({"loop": True}, 422, "unknown field 'loop'"),
])
def test_v1_animate_bad_requests(client, body, status, words):
  r = client.post("/v1/animate", json={"model": "digits", **body}, headers=AUTH)
  assert r.status_code == status and words in r.json()["error"], r.text


def test_request_heads_past_the_limit_are_431_json_in_the_app_too(client):
  """Ray Serve's proxy passes heads of any size on: the app refuses them itself."""
  from artjax.serve import MAX_HEADER_BYTES
  r = client.get("/healthz", headers={"X-Big": "a" * MAX_HEADER_BYTES})
  assert r.status_code == 431 and "at most" in r.json()["error"]
  assert client.get("/healthz", headers={"X-Small": "a" * 1000}).status_code == 200


def test_work_past_timeout_s_is_504_json_and_the_service_goes_on(trained_workdir):
  """A request whose work outlasts Settings.timeout_s is answered 504 JSON (counted in
  /metrics); the next request is served."""
  import asyncio
  from starlette.testclient import TestClient
  from artjax.serve import app, models
  from artjax.serve.work import LocalWork
  m = models.load(str(trained_workdir), "digits", max_num=16, max_batch=16, max_music=1)
  m.warm_up()
  work = LocalWork({"digits": m}, {}, 16, 5.0)
  fast, slow = work.images, {"on": True}

  async def images(name, seed, labels):
    if slow["on"]:
      await asyncio.sleep(2.0)
    return await fast(name, seed, labels)
  work.images = images
  settings = app.Settings(token=TOKEN, max_batch=16, timeout_s=0.3)
  with TestClient(app.create_app({"digits": m}, settings, work=work)) as c:
    r = c.post("/v1/generate", json={"num": 2}, headers=AUTH)
    assert r.status_code == 504 and r.json()["error"] == "timed out after 0.3 s"
    slow["on"] = False
    assert c.post("/v1/generate", json={"num": 2}, headers=AUTH).status_code == 200
    assert 'status="504"' in c.get("/metrics").text
