"""Issue #34: the surfaces added after the loop (service, export, stylize, repair, sweep,
train's workdir) probed as a hostile or careless user would; one test per defect."""

import json
import os
import socket

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import run_cli

from artjax import ConfigError

TOKEN = "surface-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def digits_model(trained_workdir):
  from artjax.serve import models
  m = models.load(trained_workdir, "digits", max_num=8, max_batch=8, max_music=1)
  m.warm_up()
  return {"digits": m}


@pytest.fixture(scope="module")
def client(digits_model):
  from starlette.testclient import TestClient
  from artjax.serve import app
  with TestClient(app.create_app(digits_model, app.Settings(token=TOKEN, max_batch=8))) as c:
    yield c


# --- the HTTP API: never a 500 ---------------------------------------------------------
def test_deeply_nested_json_is_a_400_not_a_500(client):
  body = b"[" * 8000 + b"]" * 8000          # 16 KB of nesting: RecursionError before
  r = client.post("/v1/generate", content=body, headers={**AUTH, "Content-Type": "application/json"})
  assert r.status_code == 400 and "nests deeper" in r.json()["error"]
  ok = client.post("/v1/generate", json={"num": 1, "format": "npz", "x": [[["[" * 40]]]}, headers=AUTH)
  assert ok.status_code < 500 and "nests deeper" not in ok.text   # brackets in strings do not count


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["num", "seed", "model", "format", "labels", "modes", "x"]), children, max_size=5),
    max_leaves=30)


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values | st.binary(max_size=200).map(lambda b: {"raw": b.hex()}))
def test_any_request_body_is_2xx_or_a_json_4xx(client, body):
  r = client.post("/v1/generate", content=json.dumps(body).encode(),
                  headers={**AUTH, "Content-Type": "application/json"})
  assert r.status_code < 500, (body, r.status_code, r.text[:200])
  if r.status_code >= 400:
    assert "error" in r.json()


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_any_raw_bytes_are_a_json_4xx(client, raw):
  r = client.post("/v1/generate", content=raw, headers={**AUTH, "Content-Type": "application/json"})
  assert r.status_code < 500 and (r.status_code == 200 or "error" in r.json())


# --- loopback mode: Host and Origin checked ------------------------------------------------
def test_no_token_mode_answers_loopback_hosts_and_origins_only(digits_model):
  from starlette.testclient import TestClient
  from artjax.serve import app
  with TestClient(app.create_app(digits_model, app.Settings(token=None, max_batch=8)),
                  base_url="http://127.0.0.1:8080") as c:
    assert c.get("/healthz").status_code == 200
    assert c.post("/v1/generate", json={"num": 1}, headers={"Origin": "http://localhost:8080"}).status_code == 200
    for headers in ({"Host": "evil.example"}, {"Host": "127.0.0.1.evil.example:8080"},
                    {"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Host": "localhost:80@evil.com"}, {"Host": "localhost:80/x"},   # issue #47
                    [("Origin", "http://evil.example"), ("Origin", "http://localhost:8080")],
                    [("Origin", "http://localhost:8080"), ("Origin", "http://evil.example")]):
      r = c.post("/v1/generate", json={"num": 1}, headers=headers)
      assert r.status_code == 403 and "loopback" in r.json()["error"], headers
    assert c.get("/", headers={"Host": "[::1]:8080"}).status_code == 200


def test_busy_port_is_one_line_before_loading_and_port_0_is_reported():
  from artjax.serve import bind
  taken = socket.socket()
  taken.bind(("127.0.0.1", 0))
  taken.listen(1)
  try:
    with pytest.raises(ConfigError, match="cannot listen on 127.0.0.1"):
      bind("127.0.0.1", taken.getsockname()[1])
  finally:
    taken.close()
  s = bind("127.0.0.1", 0)
  assert s.getsockname()[1] > 0
  s.close()


def test_server_limits_are_configured():
  import inspect
  from artjax import serve
  src = inspect.getsource(serve._serve_uvicorn)
  assert serve.MAX_HEADER_BYTES <= 64 * 1024 and serve.KEEP_ALIVE_S <= 10 and serve.MAX_CONNECTIONS <= 1024
  for name in ("timeout_keep_alive", "h11_max_incomplete_event_size", "limit_concurrency",
               "http=GuardedH11Protocol"):   # h11 with head timeouts and limits (serve/protocol.py)
    assert name in src


# --- runs land only where they may ----------------------------------------------------------
def test_workdir_rule(tmp_path, monkeypatch):
  from artjax.engine.workdir import check_workdir
  for bad, needle in (("/", "root"), (os.path.expanduser("~"), "home")):
    with pytest.raises(ConfigError, match=needle):
      check_workdir(bad)
  mine = tmp_path / "my_pictures"
  mine.mkdir()
  (mine / "holiday.jpg").write_bytes(b"not mine to mix with")
  r = run_cli("train", "--config=configs/gan.py:digits,smoke", f"--workdir={mine}")
  assert r.returncode != 0 and "not an artjax run" in r.stderr
  assert sorted(os.listdir(mine)) == ["holiday.jpg"]
  # issue #47: a folder with the user's own config.json is not a run (it was overwritten)
  theirs = tmp_path / "u"
  theirs.mkdir()
  (theirs / "config.json").write_text('{"my": "settings"}')
  (theirs / "photo.png").write_bytes(b"x")
  r = run_cli("train", "--config=configs/gan.py:digits,smoke", f"--workdir={theirs}")
  assert r.returncode != 0 and "not an artjax run" in r.stderr
  assert (theirs / "config.json").read_text() == '{"my": "settings"}'
  assert sorted(os.listdir(theirs)) == ["config.json", "photo.png"]
  f = tmp_path / "a_file"
  f.write_text("x")
  with pytest.raises(ConfigError, match="is a file"):
    check_workdir(str(f))
  check_workdir(str(tmp_path / "new"))          # absent and empty are fine
  check_workdir(str(tmp_path / "new"))


def test_sweep_values_never_become_path_components():
  from artjax.commands.sweep import _name
  for value in ("../../../escape", "/etc/passwd", "a/b", "..", "x\x00y"):
    name = _name({"finetune.lora_targets": value}, 3)
    assert "/" not in name and "\x00" not in name and ".." not in name, name
    assert os.path.basename(os.path.join("/w", name)) == name
  assert _name({"train.lr": 0.001}, 0) == "g00_lr=0.001"


# --- commands never eat their input ---------------------------------------------------------
def _png(path, seed=0, size=32):
  from PIL import Image
  Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), np.uint8)).save(path)
  return path


def test_stylize_refuses_to_overwrite_its_inputs(tmp_path):
  content, style = _png(tmp_path / "c.png"), _png(tmp_path / "s.png", 1)
  before = {p: p.read_bytes() for p in (content, style)}
  (tmp_path / "c.panel.png").write_bytes(b"the user's own panel")
  for out in (content, style, tmp_path / "." / "c.png"):
    r = run_cli("stylize", f"--content={content}", f"--style={style}", f"--out={out}", "--steps=2")
    assert r.returncode != 0 and "never overwritten" in r.stderr, r.stderr
  # an output whose panel would land on an input is refused as well
  r = run_cli("stylize", f"--content={tmp_path / 'c.panel.png'}", f"--style={style}",
              f"--out={content}", "--steps=2")
  assert r.returncode != 0 and "never overwritten" in r.stderr
  assert all(p.read_bytes() == b for p, b in before.items())
  assert (tmp_path / "c.panel.png").read_bytes() == b"the user's own panel"


@pytest.mark.parametrize("flag", ["--style_weight=nan", "--content_weight=inf", "--lr=-1"])
def test_stylize_numbers_are_finite(tmp_path, flag):
  content, style = _png(tmp_path / "c.png"), _png(tmp_path / "s.png", 1)
  r = run_cli("stylize", f"--content={content}", f"--style={style}", f"--out={tmp_path / 'o.png'}", flag)
  assert r.returncode != 0 and "finite" in r.stderr and not (tmp_path / "o.png").exists()


def test_repair_refuses_to_overwrite_its_inputs_and_bad_numbers(trained_workdir, tmp_path):
  x = np.zeros((2, 8, 8, 1), np.uint8)
  m = np.zeros((2, 8, 8), bool)
  m[:, 2:4, 2:4] = True
  np.savez(tmp_path / "in.npz", images=x)
  np.savez(tmp_path / "m.npz", masks=m)
  before = (tmp_path / "in.npz").read_bytes()
  base = ["repair", f"--workdir={trained_workdir}", f"--images={tmp_path / 'in.npz'}",
          f"--masks={tmp_path / 'm.npz'}"]
  for out in ("in.npz", "m.npz"):
    r = run_cli(*base, f"--out={tmp_path / out}")
    assert r.returncode != 0 and "never overwritten" in r.stderr
  for flag, needle in (("--restarts=0", "--restarts"), ("--restarts=-1", "--restarts"),
                       ("--steps=-5", "--steps")):
    r = run_cli(*base, f"--out={tmp_path / 'o.npz'}", flag)
    assert r.returncode != 0 and needle in r.stderr and r.stderr.count("error:") == 1
  assert (tmp_path / "in.npz").read_bytes() == before and not (tmp_path / "o.npz").exists()


def test_sweep_refuses_a_bool_for_a_number(tmp_path):
  from artjax.commands.sweep import _set
  from configs.gan import get_config
  c = get_config("digits,smoke")
  with pytest.raises(ConfigError, match="holds a int"):
    _set(c, "train.batch_size", True)
  _set(c, "train.batch_size", 16)
  assert c.train.batch_size == 16


def test_decompression_bomb_header_is_one_line(tmp_path):
  import struct
  import zlib
  from artjax.image import io as image_io
  # a PNG whose header claims 15000 x 12000 pixels (Pillow's DecompressionBombError)
  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
  png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 15000, 12000, 8, 2, 0, 0, 0))
         + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b""))
  (tmp_path / "bomb.png").write_bytes(png)
  with pytest.raises(ConfigError, match="pixels"):
    image_io.read_image(str(tmp_path / "bomb.png"), "--content")


def test_outputs_in_unwritable_places_are_refused_before_work(trained_workdir, tmp_path):
  r = run_cli("sample", f"--workdir={trained_workdir}", "--num=2", "--out=/proc/x.npz")
  assert r.returncode != 0 and "not writable" in r.stderr and r.stderr.count("error:") == 1
  x = np.zeros((0, 8, 8, 1), np.uint8)
  np.savez(tmp_path / "in.npz", images=x)
  np.savez(tmp_path / "m.npz", masks=np.zeros((0, 8, 8), bool))
  r = run_cli("repair", f"--workdir={trained_workdir}", f"--images={tmp_path / 'in.npz'}",
              f"--masks={tmp_path / 'm.npz'}", f"--out={tmp_path / 'o.npz'}")
  assert r.returncode != 0 and "N = 0" in r.stderr


def test_sweep_table_of_a_1000_member_population_is_linear():
  import time
  from artjax.commands.sweep import _write, group_metrics
  n = 1000
  summary = {"step": 10, "status": "finished", "wall_s": 3.0}
  for m in ("d_loss", "g_loss", "eval/fdd", "eval/is", "val_loss", "lr"):
    summary[m] = 1.0
    summary.update({f"{m}/r{r}": float(r) for r in range(n)})
  best = {"metric": "eval/fdd", "values": list(range(n)), "replica_steps": [10] * n}
  t = time.perf_counter()
  out = group_metrics(summary, best, n)
  assert time.perf_counter() - t < 5.0        # the old per-key scan took minutes here
  assert len(out) == n and out[7][0]["eval/fdd"] == 7.0 and out[7][1]["value"] == 7
  assert "wall_s" not in out[0][0] and set(out[0][0]) == {"d_loss", "g_loss", "eval/fdd", "eval/is", "val_loss", "lr"}
  single = group_metrics({"d_loss": 0.5, "d_loss/r0": 9.0}, None, 1)
  assert single == [({"d_loss": 0.5}, {})]


def test_a_stalled_or_abandoned_upload_is_a_4xx_in_bounded_time(monkeypatch):
  import asyncio
  import time
  from starlette.requests import Request
  from artjax.serve import http
  monkeypatch.setattr(http, "BODY_TIMEOUT_S", 0.3)
  scope = {"type": "http", "method": "POST", "path": "/v1/generate", "headers": [(b"content-length", b"100")]}

  async def stalled():
    await asyncio.sleep(3600)

  async def gone():
    return {"type": "http.disconnect"}
  for receive, status in ((stalled, 408), (gone, 400)):
    t = time.perf_counter()
    with pytest.raises(http.BadRequest) as e:
      asyncio.run(http.json_body(Request(scope, receive), 16384))
    assert e.value.status == status and time.perf_counter() - t < 2.0


def test_image_samples_need_an_npz_name(trained_workdir, tmp_path):
  r = run_cli("sample", f"--workdir={trained_workdir}", "--num=2", f"--out={tmp_path / 'pics'}")
  assert r.returncode != 0 and ".npz" in r.stderr and not os.listdir(tmp_path)


def test_uploads_and_files_share_one_decoder_16_bit_grey_stays_grey(tmp_path):
  """Issue #47: a 16-bit greyscale PNG upload was clipped to white (convert("RGBA") on I;16)
  while the CLI read the same file correctly."""
  import io
  from PIL import Image
  from artjax.image.io import read_image
  from artjax.serve.http import decode_image
  grey = np.full((6, 5), 30000, np.uint16)
  path = tmp_path / "grey16.png"
  Image.fromarray(grey).save(path)
  assert Image.open(path).mode.startswith("I")
  served = decode_image(path.read_bytes(), "image")
  np.testing.assert_array_equal(served, read_image(str(path)))
  np.testing.assert_allclose(served, 30000 / 65535, rtol=1e-6)
  buf = io.BytesIO()
  Image.fromarray(np.zeros((4, 4, 4), np.uint8)).save(buf, "PNG")   # transparent: white
  np.testing.assert_allclose(decode_image(buf.getvalue(), "image"), 1.0)


def test_an_error_after_a_progress_bar_starts_its_own_line(tmp_path):
  """Issue #47: `checking DIR: 0file [00:00, ?file/s]      error: ...` was one line of stderr
  (a bar closed with a carriage return): a script reading lines that start with `error:` missed it."""
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / "notes.png").write_text("not a picture")     # a bar with one file
  r = run_cli("train", "--config=configs/stylegan.py:emoji32,smoke",
              f"--config.data.name=folder:{tmp_path / 'empty'}", f"--workdir={tmp_path / 'w'}")
  assert r.returncode == 2 and "checking" in r.stderr
  lines = [ln for ln in r.stderr.split("\n") if "error:" in ln]
  assert lines and all(ln.startswith("error:") for ln in lines), r.stderr
  assert not os.path.exists(tmp_path / "w")


def test_uploads_decode_off_the_event_loop_a_few_at_a_time(monkeypatch):
  """Issue #47: uploads were decoded on the event loop (a 4096x4096 JPEG blocked every request
  ~0.6 s) with nothing capping how many decode at once."""
  import asyncio
  import threading
  import time
  from artjax.serve import http
  running, most = [0], [0]
  lock = threading.Lock()

  def slow_decode(data, what, max_pixels):
    with lock:
      running[0] += 1
      most[0] = max(most[0], running[0])
    time.sleep(0.2)                       # a large picture being decoded
    with lock:
      running[0] -= 1
    return np.zeros((2, 2, 3), np.float32)
  monkeypatch.setattr(http, "decode_image", slow_decode)

  async def main():
    ticks = []

    async def heartbeat():                # what /healthz needs: the loop keeps turning
      for _ in range(20):
        ticks.append(time.perf_counter())
        await asyncio.sleep(0.02)
    t0 = time.perf_counter()
    beat = asyncio.create_task(heartbeat())
    out = await asyncio.gather(*[http.decode_upload(b"x", "image") for _ in range(6)])
    await beat
    return out, ticks, time.perf_counter() - t0
  out, ticks, wall = asyncio.run(main())
  assert len(out) == 6 and most[0] == http.MAX_DECODES
  assert wall >= 6 / http.MAX_DECODES * 0.2 * 0.9          # the rest waited their turn
  assert max(b - a for a, b in zip(ticks, ticks[1:])) < 0.15  # never blocked by a decode
