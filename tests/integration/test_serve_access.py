"""`run.py serve` beyond one token and beyond generation: a token file (hashed tokens, scopes,
rate limits, per-client metrics, SIGHUP reload, /metrics behind a scope) and POST /v1/repair
of an uploaded picture with its mask (uploads checked before any model runs)."""

import io
import json
import os
import signal
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from helpers import run_cli

TOKENS = {"alice": "alice-secret-0001", "bob": "bob-secret-00002", "ops": "ops-secret-000003"}


def _h(t):
  import hashlib
  return hashlib.sha256(t.encode()).hexdigest()


def _token_file(path, alice_rate=None, drop=()):
  entries = [{"name": "alice", "sha256": _h(TOKENS["alice"]), "scopes": ["generate", "repair"],
              **({"rate_per_s": alice_rate, "burst": 2} if alice_rate else {})},
             {"name": "bob", "sha256": _h(TOKENS["bob"]), "scopes": ["generate"]},
             {"name": "ops", "sha256": _h(TOKENS["ops"]), "scopes": ["admin"]}]
  path.write_text(json.dumps({"tokens": [e for e in entries if e["name"] not in drop]}))
  return str(path)


def bearer(name):
  return {"Authorization": f"Bearer {TOKENS[name]}"}


class Clock:
  def __init__(self):
    self.t = 1000.0

  def __call__(self):
    return self.t


@pytest.fixture(scope="module")
def service(trained_workdir, repair_workdir, tmp_path_factory):
  from starlette.testclient import TestClient
  from artjax.serve import app, auth, models, tools
  d = tmp_path_factory.mktemp("tokens")
  clock = Clock()
  access = auth.Auth(tokens_file=_token_file(d / "tokens.json", alice_rate=1.0),
                     metrics_protected=True, clock=clock)
  gen = models.load(trained_workdir, "digits", max_num=8, max_batch=8, max_music=2)
  tool = tools.load(repair_workdir, "repair", 256)
  gen.warm_up()
  tool.warm_up()
  settings = app.Settings(token=None, max_batch=8, max_upload=64 * 1024, auth=access)
  with TestClient(app.create_app({"digits": gen}, settings, {"repair": tool})) as c:
    yield c, access, clock, d


def png(a) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(np.asarray(a, np.uint8)).save(buf, format="PNG")
  return buf.getvalue()


def _digit_and_mask():
  from artjax.image.data import load_images
  x = load_images("digits").images("test")[3][..., 0]          # uint8 8x8
  m = np.zeros((8, 8), np.uint8)
  m[4:] = 255                                                  # bottom half missing
  return x, m


def test_scopes_and_unknown_tokens(service):
  c, access, clock, _ = service
  clock.t += 100
  assert c.post("/v1/generate", json={"num": 1}, headers=bearer("bob")).status_code == 200
  x, m = _digit_and_mask()
  r = c.post("/v1/repair", files={"image": png(x), "mask": png(m)}, headers=bearer("bob"))
  assert r.status_code == 403 and r.json()["error"] == "token 'bob' lacks the 'repair' scope"
  r = c.post("/v1/generate", json={"num": 1}, headers={"Authorization": "Bearer not-a-token-at-all"})
  assert r.status_code == 403 and r.json()["error"] == "wrong token"
  assert c.post("/v1/generate", json={"num": 1}).status_code == 401


def test_metrics_behind_a_scope_name_clients_never_tokens(service):
  c, access, clock, _ = service
  clock.t += 100
  assert c.post("/v1/generate", json={"num": 1}, headers=bearer("alice")).status_code == 200
  assert c.get("/metrics").status_code == 401
  assert c.get("/metrics", headers=bearer("bob")).status_code == 403
  r = c.get("/metrics", headers=bearer("ops"))
  assert r.status_code == 200
  text = r.text
  assert 'artjax_client_requests_total{client="alice",endpoint="generate",status="200"}' in text
  assert "artjax_ready 1.0" in text and "artjax_compiles_since_ready 0.0" in text
  assert not any(t in text for t in TOKENS.values()) and not any(_h(t) in text for t in TOKENS.values())


def test_rate_limit_is_429_with_retry_after_then_recovers(service):
  c, access, clock, _ = service
  clock.t += 100                                               # a full bucket (burst 2)
  codes = [c.post("/v1/generate", json={"num": 1}, headers=bearer("alice")).status_code for _ in range(2)]
  r = c.post("/v1/generate", json={"num": 1}, headers=bearer("alice"))
  assert codes == [200, 200] and r.status_code == 429
  assert r.headers["Retry-After"] == "1" and "rate limit of 1 requests/s" in r.json()["error"]
  assert c.post("/v1/generate", json={"num": 1}, headers=bearer("bob")).status_code == 200  # others unaffected
  clock.t += 1.0
  assert c.post("/v1/generate", json={"num": 1}, headers=bearer("alice")).status_code == 200


def test_sighup_reloads_tokens_and_a_bad_file_keeps_them(service, capsys):
  from artjax.serve import _reload_on_sighup
  c, access, clock, d = service
  clock.t += 100
  path = access.tokens_file
  try:
    _token_file(d / "tokens.json", alice_rate=1.0, drop=("bob",))   # bob revoked
    with _reload_on_sighup(access):
      os.kill(os.getpid(), signal.SIGHUP)
    assert "reloaded 2 token(s)" in capsys.readouterr().err
    assert c.post("/v1/generate", json={"num": 1}, headers=bearer("bob")).status_code == 403
    with open(path, "w") as f:
      f.write('{"tokens": [{"name": "x", "sha256": "plaintext-token", "scopes": ["admin"]}]}')
    msg = access.reload()
    assert msg.startswith("error: ") and "64 hex digits" in msg and "keeping the 2 token(s)" in msg
    assert c.post("/v1/generate", json={"num": 1}, headers=bearer("alice")).status_code == 200
  finally:
    _token_file(d / "tokens.json", alice_rate=1.0)
    access.reload()


def test_repair_upload_equals_run_py_repair(service, repair_workdir, tmp_path):
  c, access, clock, _ = service
  clock.t += 100
  x, m = _digit_and_mask()
  r = c.post("/v1/repair", files={"image": png(x), "mask": png(m)}, headers=bearer("alice"))
  assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
  assert r.headers["X-Artjax-Missing-Pixels"] == "32"
  out = np.asarray(Image.open(io.BytesIO(r.content)))
  assert out.shape == (8, 8) and (out[:4] == x[:4]).all()      # visible pixels unchanged
  (tmp_path / "x.png").write_bytes(png(x))
  (tmp_path / "m.png").write_bytes(png(m))
  cli = run_cli("repair", f"--workdir={repair_workdir}", f"--image={tmp_path / 'x.png'}",
                f"--mask={tmp_path / 'm.png'}", f"--out={tmp_path / 'o.png'}")
  assert cli.returncode == 0, cli.stderr
  assert (np.asarray(Image.open(tmp_path / "o.png")) == out).all()


def _bomb() -> bytes:
  """A valid PNG header claiming 100000 x 100000 pixels (a few bytes of data)."""
  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
  ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
  return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def _gif() -> bytes:
  buf = io.BytesIO()
  Image.new("L", (8, 8)).save(buf, format="GIF")
  return buf.getvalue()


@pytest.mark.parametrize("case, status, words", [
    ("json", 415, "multipart/form-data"),
    ("no_mask", 422, "missing the 'mask' file part"),
    ("garbage", 422, "image: not a readable PNG or JPEG"),
    ("gif", 415, "a GIF file; send a PNG or JPEG"),
    ("bomb", 413, "image: claims more pixels than allowed"),
    ("big", 413, "body over 65536 bytes"),
    ("mismatch", 422, "the mask is 4x4 but the image is 8x8"),
    ("empty_mask", 422, "the mask marks nothing missing"),
    ("full_mask", 422, "nothing is left to repair from"),
    ("extra", 422, "unexpected or repeated part 'path'"),
    ("model", 404, "unknown repair model 'nope'"),
])
def test_bad_uploads_are_json_4xx(service, case, status, words):
  c, access, clock, _ = service
  clock.t += 100
  x, m = _digit_and_mask()
  files = {"image": png(x), "mask": png(m)}
  data = None
  if case == "json":
    r = c.post("/v1/repair", json={"image": "x"}, headers=bearer("alice"))
  else:
    if case == "no_mask":
      del files["mask"]
    files = {**files, **{"garbage": {"image": b"not an image"}, "gif": {"image": _gif()},
                         "bomb": {"image": _bomb()}, "big": {"image": os.urandom(70000)},
                         "mismatch": {"mask": png(np.full((4, 4), 255))},
                         "empty_mask": {"mask": png(np.zeros((8, 8)))},
                         "full_mask": {"mask": png(np.full((8, 8), 255))},
                         "extra": {"path": b"/etc/passwd"}}.get(case, {})}
    data = {"model": "nope"} if case == "model" else None
    r = c.post("/v1/repair", files=files, data=data, headers=bearer("alice"))
  assert r.status_code == status and words in r.json()["error"], (r.status_code, r.text)


def test_stylize_without_a_style_network_is_404(service):
  c, access, clock, _ = service
  clock.t += 100
  r = c.post("/v1/stylize", files={"image": png(np.zeros((8, 8)))}, headers=bearer("ops"))
  assert r.status_code == 404 and "no stylize model" in r.json()["error"]


@pytest.mark.parametrize("content, words", [
    ("not json", "not valid JSON"),
    ('{"tokens": []}', 'expected {"tokens"'),
    ('{"tokens": [{"name": "a", "sha256": "%s", "scopes": ["paint"]}]}' % ("0" * 64), "scopes must be"),
    ('{"tokens": [{"name": "a", "sha256": "%s", "scopes": ["admin"], "rate_per_s": 0}]}' % ("0" * 64), "rate_per_s"),
    ('{"tokens": [{"name": "a", "sha256": "%s", "scopes": ["admin"], "token": "x"}]}' % ("0" * 64), "unknown field 'token'"),
    # issue #47: a subnormal rate (its second request was a 500), a name or hash ending in "\n"
    ('{"tokens": [{"name": "a", "sha256": "%s", "scopes": ["admin"], "rate_per_s": 5e-324}]}' % ("0" * 64), "rate_per_s must be a number from"),
    ('{"tokens": [{"name": "eve\\n", "sha256": "%s", "scopes": ["admin"]}]}' % ("0" * 64), "name must be"),
    ('{"tokens": [{"name": "eve", "sha256": "%s\\n", "scopes": ["admin"]}]}' % ("0" * 64), "sha256 must be"),
])
def test_bad_token_files_are_one_line_at_start_up(tmp_path, trained_workdir, content, words):
  f = tmp_path / "tokens.json"
  f.write_text(content)
  r = run_cli("serve", f"--workdir={trained_workdir}", f"--tokens={f}", "--port=0")
  assert r.returncode == 2 and r.stderr.startswith("error: --tokens") and words in r.stderr, r.stderr
  assert len(r.stderr.strip().splitlines()) == 1


def test_alert_rules_and_dashboard_name_only_exported_metrics():
  """alerts.yml and dashboard.json parse, and every metric they query is one the service
  exports (a renamed metric breaks this test, not a silent alert)."""
  import re
  import yaml
  from importlib import resources
  from artjax.serve import app
  registry, _ = app._metrics()
  exported = {s.name for fam in registry.collect() for s in fam.samples}
  files = resources.files("artjax.serve")
  rules = yaml.safe_load(files.joinpath("alerts.yml").read_text())
  exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
  assert len(exprs) == 5 and all(r["annotations"]["summary"] for g in rules["groups"] for r in g["rules"])
  dash = json.loads(files.joinpath("dashboard.json").read_text())
  exprs += [t["expr"] for p in dash["panels"] for t in p["targets"]]
  used = {m for e in exprs for m in re.findall(r"\bartjax_[a-z_]+", e)}
  histos = {n[:-len("_bucket")] for n in exported if n.endswith("_bucket")}
  known = exported | {f"{h}_bucket" for h in histos} | {f"{h}_sum" for h in histos} | {f"{h}_count" for h in histos}
  # labelled families have no samples until used: their names come from the registry's metadata
  for fam in registry.collect():
    known |= {fam.name, f"{fam.name}_total", f"{fam.name}_bucket", f"{fam.name}_sum", f"{fam.name}_count"}
  assert used and used <= known, sorted(used - known)
  assert {"artjax_ready", "artjax_compiles_since_ready", "artjax_client_requests_total"} <= used


@pytest.mark.parametrize("args, words", [
    (["--backend=ray", "--min_replicas=3", "--max_replicas=2"], "need 1 <= --min_replicas (3) <= --max_replicas (2)"),
    (["--backend=ray", "--target_ongoing=0"], "--target_ongoing must be > 0"),
    (["--backend=grpc"], "--backend"),
])
def test_bad_ray_options_are_one_line_before_ray_starts(trained_workdir, args, words):
  r = run_cli("serve", f"--workdir={trained_workdir}", "--port=0", *args)
  assert r.returncode != 0 and words in r.stderr, r.stderr
