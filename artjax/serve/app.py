"""The HTTP API of `run.py serve` (Starlette, served by uvicorn).

    GET  /            the web page (static/index.html; calls the API below)
    GET  /healthz     JSON status; 200 once every model is warmed up, 503 before
    GET  /metrics     Prometheus text
    POST /v1/generate bearer token; JSON in, PNG / npz / MIDI / WAV / zip out

Bad input never reaches a model: it is a 4xx with a JSON body {"error": ...}. Nothing in a
request names a file; the models are fixed at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import io
import json
import secrets
import time
import zipfile
from importlib import resources

import jax
import numpy as np
import prometheus_client as prom
from PIL import Image
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from artjax.music import encoding as enc, render
from artjax.serve.batcher import Batcher
from artjax.serve.models import COMPILES, FORMATS
from artjax.engine.writers import image_grid

MAX_SEED = 2**31 - 1
MEDIA = {"png": "image/png", "npz": "application/octet-stream", "midi": "audio/midi",
         "wav": "audio/wav", "zip": "application/zip"}


@dataclasses.dataclass
class Settings:
  token: str | None
  max_batch: int = 64
  max_wait_ms: float = 5.0
  max_body: int = 16384
  timeout_s: float = 30.0


class BadRequest(Exception):
  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status, self.message = status, message


def _metrics():
  r = prom.CollectorRegistry()
  return r, {
      "requests": prom.Counter("artjax_requests", "HTTP requests", ["endpoint", "status"], registry=r),
      "latency": prom.Histogram("artjax_request_seconds", "Request latency", ["endpoint"],
                                buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30),
                                registry=r),
      "batch": prom.Histogram("artjax_batch_rows", "Rows per compiled call", ["model"],
                              buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r),
      "queue": prom.Gauge("artjax_queue_depth", "Chunks waiting", ["model"], registry=r),
      "compiles": prom.Gauge("artjax_compiles", "XLA compilations and compilation-cache loads "
                             "since start-up", registry=r),
      "images": prom.Counter("artjax_items", "Images or pieces generated", ["model"], registry=r),
  }


def _field(body: dict, name: str, kind, default, lo=None, hi=None):
  v = body.get(name, default)
  if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
    raise BadRequest(422, f"'{name}' must be an integer, got {json.dumps(v)}")
  if kind is float and (isinstance(v, bool) or not isinstance(v, (int, float))):
    raise BadRequest(422, f"'{name}' must be a number, got {json.dumps(v)}")
  if kind is str and not isinstance(v, str):
    raise BadRequest(422, f"'{name}' must be a string, got {json.dumps(v)}")
  if lo is not None and not lo <= v <= hi:
    raise BadRequest(422, f"'{name}' must be in {lo}..{hi}, got {v}")
  return v


KNOWN = {"images": {"model", "num", "seed", "labels", "format"},
         "tokens": {"model", "num", "seed", "mode", "key_guidance", "format"}}


def parse_request(body, models: dict) -> dict:
  """The validated request (BadRequest with the first problem)."""
  if not isinstance(body, dict):
    raise BadRequest(400, "the body must be a JSON object")
  name = _field(body, "model", str, next(iter(models)))
  if name not in models:
    raise BadRequest(404, f"unknown model {name!r}; served: {', '.join(models)}")
  m = models[name]
  unknown = sorted(set(body) - KNOWN[m.kind])
  if unknown:
    raise BadRequest(422, f"unknown field {unknown[0]!r} for a {m.describe()['kind']} model; "
                          f"fields: {', '.join(sorted(KNOWN[m.kind]))}")
  req = {"model": m, "num": _field(body, "num", int, 1, 1, m.max_num),
         "seed": _field(body, "seed", int, secrets.randbelow(MAX_SEED), 0, MAX_SEED),
         "format": _field(body, "format", str, "png" if m.kind == "images" else "zip")}
  if req["format"] not in FORMATS[m.kind]:
    raise BadRequest(422, f"unknown format {req['format']!r}; choose one of "
                          f"{', '.join(FORMATS[m.kind])}")
  if m.kind == "images":
    req["labels"] = _labels(body, req["num"], m.num_classes)
  else:
    mode = _field(body, "mode", str, "alternate")
    if mode not in ("alternate", "major", "minor"):
      raise BadRequest(422, f"'mode' must be alternate, major or minor, got {mode!r}")
    req["modes"] = (np.arange(req["num"]) % 2 if mode == "alternate" else
                    np.full(req["num"], 0 if mode == "major" else 1))
    req["key_guidance"] = float(_field(body, "key_guidance", float, 0.0, 0.0, 10.0))
    if req["format"] in ("midi", "wav") and req["num"] != 1:
      raise BadRequest(422, f"format {req['format']!r} holds one piece: use num=1 or format 'zip'")
  return req


def _labels(body, num: int, classes: int):
  if "labels" not in body:
    return np.arange(num) % max(classes, 1)
  labels = body["labels"]
  if not isinstance(labels, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in labels):
    raise BadRequest(422, "'labels' must be a list of integers")
  if classes == 0:
    raise BadRequest(422, "'labels' given, but this model is unconditional")
  if len(labels) != num:
    raise BadRequest(422, f"'labels' has {len(labels)} entries, 'num' is {num}")
  bad = [v for v in labels if not 0 <= v < classes]
  if bad:
    raise BadRequest(422, f"label {bad[0]} is out of range 0..{classes - 1}")
  return np.asarray(labels)


def encode_images(images, labels, seed: int, fmt: str, columns: int) -> bytes:
  buf = io.BytesIO()
  if fmt == "npz":
    np.savez(buf, images=images, labels=np.asarray(labels, np.int32), seed=np.int32(seed))
  else:
    grid = image_grid(images, ncol=min(columns, len(images)), scale=max(1, 64 // images.shape[1]))
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(buf, format="PNG")
  return buf.getvalue()


def _piece(tokens, kind: str) -> bytes:
  buf = io.BytesIO()
  roll = enc.tokens_to_roll(tokens)
  if kind == "midi":
    render.write_midi(buf, roll)
  else:
    render.write_wav(buf, roll)
  return buf.getvalue()


def encode_music(tokens, fmt: str) -> bytes:
  if fmt in ("midi", "wav"):
    return _piece(tokens[0], fmt)
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as z:
    for i, row in enumerate(tokens):
      z.writestr(f"piece_{i:03d}.mid", _piece(row, "midi"))
      z.writestr(f"piece_{i:03d}.wav", _piece(row, "wav"))
  return buf.getvalue()


def _authorised(request: Request, token: str | None) -> None:
  if token is None:
    return
  header = request.headers.get("authorization", "")
  if not header.lower().startswith("bearer "):
    raise BadRequest(401, "missing bearer token (Authorization: Bearer TOKEN)")
  if not hmac.compare_digest(header[7:].strip().encode(), token.encode()):
    raise BadRequest(403, "wrong token")


MAX_JSON_DEPTH = 32
BODY_TIMEOUT_S = 10.0


def json_depth(data: bytes) -> int:
  """Deepest nesting of arrays/objects in JSON text (strings and escapes skipped), found
  without parsing: a guard against recursion in the parser."""
  depth = best = 0
  in_str = esc = False
  for ch in data:
    if in_str:
      if esc:
        esc = False
      elif ch == 0x5C:        # backslash
        esc = True
      elif ch == 0x22:        # quote
        in_str = False
    elif ch == 0x22:
      in_str = True
    elif ch in (0x5B, 0x7B):  # [ {
      depth += 1
      best = max(best, depth)
    elif ch in (0x5D, 0x7D):
      depth -= 1
  return best


async def _body(request: Request, limit: int):
  declared = request.headers.get("content-length")
  if declared and declared.isdigit() and int(declared) > limit:
    raise BadRequest(413, f"body over {limit} bytes")
  async def read():
    data = b""
    async for part in request.stream():
      data += part
      if len(data) > limit:
        raise BadRequest(413, f"body over {limit} bytes")
    return data
  try:   # a stalled upload holds nobody else up, nor shutdown, beyond BODY_TIMEOUT_S
    data = await asyncio.wait_for(read(), BODY_TIMEOUT_S)
  except asyncio.TimeoutError:
    raise BadRequest(408, f"the body did not arrive within {BODY_TIMEOUT_S} s") from None
  except ClientDisconnect:
    raise BadRequest(400, "the client went away before its body arrived") from None
  if json_depth(data) > MAX_JSON_DEPTH:
    raise BadRequest(400, f"the body nests deeper than {MAX_JSON_DEPTH} levels")
  try:
    return json.loads(data or b"null")
  except (ValueError, UnicodeDecodeError) as e:
    raise BadRequest(400, f"the body is not valid JSON: {e}") from e


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def _hostname(value: str) -> str:
  """The host of a Host header ("127.0.0.1:8080", "[::1]:80") or of an Origin URL."""
  from urllib.parse import urlsplit
  if "//" in value:
    return (urlsplit(value).hostname or "").lower()
  value = value.strip().lower()
  if value.startswith("["):
    return value[1:value.find("]")] if "]" in value else value
  return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class LoopbackGuard:
  """Without a token the service trusts only this machine: a request must name a loopback
  Host, and an Origin (a web page's request) must be a loopback page too. Otherwise a page
  the user visits could drive the service (DNS rebinding, cross-origin POSTs): 403 JSON."""

  def __init__(self, app):
    self.app = app

  async def __call__(self, scope, receive, send):
    if scope["type"] == "http":
      headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
      host, origin = headers.get("host", ""), headers.get("origin")
      bad = ("Host" if _hostname(host) not in LOOPBACK_NAMES else
             "Origin" if origin is not None and _hostname(origin) not in LOOPBACK_NAMES else None)
      if bad:
        resp = JSONResponse({"error": f"{bad} {headers.get(bad.lower())!r} refused: without a "
                             "token this service answers loopback clients only"}, 403)
        await resp(scope, receive, send)
        return
    await self.app(scope, receive, send)


def create_app(models: dict, settings: Settings) -> Starlette:
  """The ASGI app serving `models` ({name: artjax.serve.models.Model}, warmed up)."""
  registry, metric = _metrics()
  state = {"ready": False, "batchers": {}, "arriving": 0}
  observe = lambda name, rows, depth: (metric["batch"].labels(name).observe(rows),
                                       metric["queue"].labels(name).set(depth))

  @contextlib.asynccontextmanager
  async def lifespan(app):
    for name, m in models.items():
      b = Batcher(m, settings.max_batch, settings.max_wait_ms, observe,
                  arriving=lambda: state["arriving"])
      b.start()
      state["batchers"][name] = b
    state["compiles_at_start"] = COMPILES["count"]
    state["ready"] = True
    yield
    state["ready"] = False
    for b in state["batchers"].values():
      await b.stop()

  def done(endpoint, status, t0):
    metric["requests"].labels(endpoint, str(status)).inc()
    metric["latency"].labels(endpoint).observe(time.perf_counter() - t0)

  async def generate(request: Request):
    t0 = time.perf_counter()
    state["arriving"] += 1      # read and checked, not yet queued: batches wait for these
    try:
      try:
        _authorised(request, settings.token)
        req = parse_request(await _body(request, settings.max_body), models)
      finally:
        state["arriving"] -= 1
      m = req["model"]
      b = state["batchers"][m.name]
      if m.kind == "images":
        out = await asyncio.wait_for(b.images(req["seed"], req["labels"]), settings.timeout_s)
        content = encode_images(out, req["labels"], req["seed"], req["format"],
                                m.num_classes or 10)
      else:
        out = await asyncio.wait_for(b.music(req["seed"], req["modes"], req["key_guidance"]),
                                     settings.timeout_s)
        content = await asyncio.get_running_loop().run_in_executor(
            None, encode_music, out, req["format"])
    except BadRequest as e:
      done("generate", e.status, t0)
      return JSONResponse({"error": e.message}, e.status)
    except asyncio.TimeoutError:
      done("generate", 504, t0)
      return JSONResponse({"error": f"timed out after {settings.timeout_s} s"}, 504)
    metric["images"].labels(m.name).inc(req["num"])
    done("generate", 200, t0)
    return Response(content, media_type=MEDIA[req["format"]], headers={
        "X-Artjax-Model": m.name, "X-Artjax-Step": str(m.step), "X-Artjax-Seed": str(req["seed"])})

  async def healthz(request: Request):
    body = {"ready": state["ready"], "device": str(jax.devices()[0]),
            "models": [m.describe() for m in models.values()],
            "compiles_since_ready": COMPILES["count"] - state.get("compiles_at_start", 0)}
    return JSONResponse(body, 200 if state["ready"] else 503)

  async def metrics(request: Request):
    metric["compiles"].set(COMPILES["count"])
    for name, b in state["batchers"].items():
      metric["queue"].labels(name).set(b.depth())
    return Response(prom.generate_latest(registry), media_type=prom.CONTENT_TYPE_LATEST)

  async def page(request: Request):
    return HTMLResponse(resources.files("artjax.serve").joinpath("static/index.html").read_text())

  async def http_error(request: Request, exc: HTTPException):
    return JSONResponse({"error": exc.detail}, exc.status_code)

  return Starlette(
      routes=[Route("/", page), Route("/healthz", healthz), Route("/metrics", metrics),
              Route("/v1/generate", generate, methods=["POST"])],
      lifespan=lifespan, middleware=[] if settings.token else [Middleware(LoopbackGuard)],
      exception_handlers={HTTPException: http_error})
