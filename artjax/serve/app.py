"""The HTTP API of `run.py serve` (Starlette, served by uvicorn).

    GET  /            the web page (static/index.html; calls the API below)
    GET  /healthz     JSON status; 200 once every model is warmed up, 503 before
    GET  /metrics     Prometheus text (behind the "metrics" scope with --protect_metrics)
    POST /v1/generate JSON in, PNG / npz / MIDI / WAV / zip out   (scope "generate")
    POST /v1/animate  JSON in (seed, seconds, fps, size, label, format), MP4 / GIF out: a
                      looping latent walk of an image GAN         (scope "generate")
    POST /v1/poems    JSON in (form, strict, acrostic, prime, author, num, seed), JSON /
                      text / calligraphy PNG out                     (scope "generate")
    POST /v1/stylize  multipart `image` in, PNG out                  (scope "stylize")
    POST /v1/repair   multipart `image` + `mask` in, PNG out         (scope "repair")

Access (artjax.serve.auth): no token (loopback clients only), one --token, or a --tokens file
of hashed tokens with scopes and rate limits.

Bad input never reaches a model: it is a 4xx with a JSON body {"error": ...}. Nothing in a
request names a file; the models are fixed at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import os
import json
import secrets
import time
import zipfile
from importlib import resources

import jax
import numpy as np
import prometheus_client as prom
from prometheus_client.core import HistogramMetricFamily
from PIL import Image
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from artjax import ConfigError
from artjax.music import encoding as enc, mood as mood_lib, render
from artjax.poetry import calligraphy, pingshui, text
from artjax.serve.auth import Auth, Denied
from artjax.serve.http import (BadRequest, HeaderLimit, LoopbackGuard, decode_upload, field, form_body,
                               json_body)
from artjax.serve.models import FORMATS, compiles
from artjax.serve.counts import BATCH_BUCKETS
from artjax.serve.work import LocalWork
from artjax.engine.writers import image_grid

MAX_SEED = 2**31 - 1
MEDIA = {"png": "image/png", "npz": "application/octet-stream", "midi": "audio/midi",
         "wav": "audio/wav", "zip": "application/zip", "text": "text/plain; charset=utf-8"}
SCOPE = {"poems": "generate", "animate": "generate"}     # endpoints sharing another's scope
ANIMATE_FIELDS = {"model", "seed", "seconds", "fps", "size", "label", "format"}
MEDIA.update({"mp4": "video/mp4", "gif": "image/gif"})
POEM_FIELDS = {"model", "form", "strict", "acrostic", "prime", "author", "num", "seed", "format"}


@dataclasses.dataclass
class Settings:
  token: str | None
  max_batch: int = 64
  max_wait_ms: float = 5.0
  max_body: int = 16384
  timeout_s: float = 30.0
  max_upload: int = 8 * 2**20       # bytes of one multipart upload (/v1/stylize, /v1/repair)
  max_frames: int = 240             # /v1/animate: frames of one video (seconds x fps)
  max_video_pixels: int = 240 * 256 * 256    # /v1/animate: frames x size^2
  auth: Auth | None = None          # None: the single `token` (or none: loopback only)

  def access(self) -> Auth:
    return self.auth if self.auth is not None else Auth(token=self.token)


class ReplicaBatches:
  """`artjax_batch_rows` for the Ray backend: the model replicas' own counts (their batches
  run in other processes), summed, as the same histogram the single process observes."""

  def __init__(self):
    self.counts: dict = {}

  def describe(self):
    return [HistogramMetricFamily("artjax_batch_rows", "Rows per compiled call", labels=["model"])]

  def collect(self):
    family = HistogramMetricFamily("artjax_batch_rows", "Rows per compiled call", labels=["model"])
    for name, c in sorted(self.counts.items()):
      buckets = [(str(float(le)), n) for le, n in zip(BATCH_BUCKETS, c["buckets"])]
      family.add_metric([name], buckets + [("+Inf", c["count"])], c["sum"])
    yield family


def _metrics(local: bool = True):
  r = prom.CollectorRegistry()
  remote = {} if local else {
      "batch": ReplicaBatches(),
      "replicas": prom.Gauge("artjax_model_replicas", "Model replicas that reported in the "
                             "last 10 s (Ray backend)", registry=r)}
  if not local:
    r.register(remote["batch"])
  return r, {
      "requests": prom.Counter("artjax_requests", "HTTP requests", ["endpoint", "status"], registry=r),
      "clients": prom.Counter("artjax_client_requests", "HTTP requests per client (token name)",
                              ["client", "endpoint", "status"], registry=r),
      "latency": prom.Histogram("artjax_request_seconds", "Request latency", ["endpoint"],
                                buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30),
                                registry=r),
      **({"batch": prom.Histogram("artjax_batch_rows", "Rows per compiled call", ["model"],
                                  buckets=BATCH_BUCKETS, registry=r)} if local else remote),
      "queue": prom.Gauge("artjax_queue_depth", "Chunks waiting", ["model"], registry=r),
      "compiles": prom.Gauge("artjax_compiles", "XLA compilations and compilation-cache loads "
                             "since start-up", registry=r),
      "compiles_ready": prom.Gauge("artjax_compiles_since_ready", "Compilations after warm-up "
                                   "(0 in a healthy service)", registry=r),
      "ready": prom.Gauge("artjax_ready", "1 once every model is warmed up and serving", registry=r),
      "images": prom.Counter("artjax_items", "Images or pieces generated", ["model"], registry=r),
  }


KNOWN = {"images": {"model", "num", "seed", "labels", "format"},
         "tokens": {"model", "num", "seed", "mode", "mood", "key_guidance", "format",
                    "instruments"}}


def parse_request(body, models: dict) -> dict:
  """The validated request (BadRequest with the first problem)."""
  if not isinstance(body, dict):
    raise BadRequest(400, "the body must be a JSON object")
  if not models:
    raise BadRequest(404, "this service serves no generative model (see GET /healthz)")
  m = _model(body, {n: m for n, m in models.items() if m.kind != "poems"}, "/v1/generate",
             "poems: use POST /v1/poems")
  unknown = sorted(set(body) - KNOWN[m.kind])
  if unknown:
    raise BadRequest(422, f"unknown field {unknown[0]!r} for a {m.describe()['kind']} model; "
                          f"fields: {', '.join(sorted(KNOWN[m.kind]))}")
  req = {"model": m, "num": field(body, "num", int, 1, 1, m.max_num),
         "seed": field(body, "seed", int, secrets.randbelow(MAX_SEED), 0, MAX_SEED),
         "format": field(body, "format", str, "png" if m.kind == "images" else "zip")}
  if req["format"] not in FORMATS[m.kind]:
    raise BadRequest(422, f"unknown format {req['format']!r}; choose one of "
                          f"{', '.join(FORMATS[m.kind])}")
  if m.kind == "images":
    req["labels"] = _labels(body, req["num"], m.num_classes)
  else:
    _music_fields(body, req)
    req["key_guidance"] = float(field(body, "key_guidance", float, 0.0, 0.0, 10.0))
    req["instruments"] = field(body, "instruments", str, "choir")
    try:
      render.parse_instruments(req["instruments"])
    except ValueError as e:
      raise BadRequest(422, str(e)) from None
    if req["format"] in ("midi", "wav") and req["num"] != 1:
      raise BadRequest(422, f"format {req['format']!r} holds one piece: use num=1 or format 'zip'")
  return req


def _music_fields(body, req) -> None:
  """modes, bpm and register of a music request: from `mode`, or from `mood` ("VALENCE,AROUSAL",
  artjax/music/mood.py: mode from valence, tempo and register from both)."""
  mood = field(body, "mood", str, "")
  if mood:
    if "mode" in body:
      raise BadRequest(422, "'mood' sets the mode (valence >= 0: major): give 'mood' or 'mode'")
    try:
      ctl = mood_lib.controls(*mood_lib.parse(mood))
    except ValueError as e:
      raise BadRequest(422, str(e)) from None
    req.update(modes=np.full(req["num"], ctl.mode), bpm=ctl.bpm, register=ctl.register)
    return
  mode = field(body, "mode", str, "alternate")
  if mode not in ("alternate", "major", "minor"):
    raise BadRequest(422, f"'mode' must be alternate, major or minor, got {mode!r}")
  req.update(modes=(np.arange(req["num"]) % 2 if mode == "alternate" else
                    np.full(req["num"], 0 if mode == "major" else 1)),
             bpm=mood_lib.BASE_BPM, register=0)


def _model(body, models: dict, path: str, elsewhere: str):
  """The request's model among `models` (404 when it is unknown or served elsewhere)."""
  if not models:
    raise BadRequest(404, f"this service serves no model for {path} ({elsewhere}; see GET /healthz)")
  name = field(body, "model", str, next(iter(models)))
  if name not in models:
    raise BadRequest(404, f"unknown model {name!r} for {path}; served: {', '.join(models)}")
  return models[name]


def parse_poems(body, models: dict) -> dict:
  """A validated /v1/poems request (BadRequest with the first problem)."""
  if not isinstance(body, dict):
    raise BadRequest(400, "the body must be a JSON object")
  m = _model(body, {n: m for n, m in models.items() if m.kind == "poems"}, "/v1/poems",
             "images and music: use POST /v1/generate")
  unknown = sorted(set(body) - POEM_FIELDS)
  if unknown:
    raise BadRequest(422, f"unknown field {unknown[0]!r} for a poetry model; fields: "
                          f"{', '.join(sorted(POEM_FIELDS))}")
  req = {"model": m, "form": field(body, "form", str, "wujue"),
         "strict": body.get("strict", False), "acrostic": field(body, "acrostic", str, ""),
         "prime": field(body, "prime", str, ""), "author": field(body, "author", str, ""),
         "num": field(body, "num", int, 1, 1, m.max_num),
         "seed": field(body, "seed", int, secrets.randbelow(MAX_SEED), 0, MAX_SEED),
         "format": field(body, "format", str, "json")}
  if not isinstance(req["strict"], bool):
    raise BadRequest(422, f"'strict' must be true or false, got {json.dumps(req['strict'])}")
  if req["form"] not in text.SHAPES:
    raise BadRequest(422, f"unknown form {req['form']!r}; choose one of {', '.join(text.SHAPES)}")
  verses = text.SHAPES[req["form"]][0]
  if req["acrostic"] and (len(req["acrostic"]) != verses or not all(map(text.is_han, req["acrostic"]))):
    raise BadRequest(422, f"'acrostic' must be {verses} Han characters (one per verse of a "
                          f"{req['form']}), got {req['acrostic']!r}")
  if len(req["prime"]) > len(text.template(req["form"])):
    raise BadRequest(422, f"'prime' is longer than a {req['form']}")
  if req["format"] not in FORMATS["poems"]:
    raise BadRequest(422, f"unknown format {req['format']!r}; choose one of {', '.join(FORMATS['poems'])}")
  return req


def parse_animate(body, models: dict, settings) -> dict:
  """A validated /v1/animate request (BadRequest with the first problem)."""
  if not isinstance(body, dict):
    raise BadRequest(400, "the body must be a JSON object")
  m = _model(body, {n: m for n, m in models.items() if m.kind == "images"
                    and m.describe().get("animates")}, "/v1/animate",
             "only image GANs exported with a walk animate")
  unknown = sorted(set(body) - ANIMATE_FIELDS)
  if unknown:
    raise BadRequest(422, f"unknown field {unknown[0]!r}; fields: {', '.join(sorted(ANIMATE_FIELDS))}")
  req = {"model": m, "seed": field(body, "seed", int, secrets.randbelow(MAX_SEED), 0, MAX_SEED),
         "seconds": float(field(body, "seconds", float, 2.0, 0.1, 600.0)),
         "fps": field(body, "fps", int, 12, 1, 30), "size": field(body, "size", int, 128, 8, 512),
         "label": field(body, "label", int, 0, 0, max(m.num_classes - 1, 0)),
         "format": field(body, "format", str, "mp4")}
  if req["format"] not in ("mp4", "gif"):
    raise BadRequest(422, f"unknown format {req['format']!r}; choose mp4 or gif")
  req["frames"] = int(round(req["seconds"] * req["fps"]))
  if not 2 <= req["frames"] <= settings.max_frames:
    raise BadRequest(422, f"seconds x fps = {req['frames']} frames; this service makes videos "
                          f"of 2..{settings.max_frames} frames")
  if req["frames"] * req["size"] ** 2 > settings.max_video_pixels:
    raise BadRequest(422, f"{req['frames']} frames of {req['size']}x{req['size']} are above this "
                          f"service's {settings.max_video_pixels:,} pixels per video: lower size, "
                          "seconds or fps")
  return req


def encode_video(frames, size: int, fps: int, fmt: str) -> bytes:
  """MP4 (H.264) or GIF bytes of uint8 frames [F, h, w, C], nearest-upscaled to size x size
  (the same pixels as `run.py animate --size`'s nearest resize)."""
  import tempfile
  from artjax.engine.video import VideoWriter
  f = np.asarray(frames)
  if f.shape[-1] == 1:
    f = np.repeat(f, 3, -1)
  rows = np.minimum((np.arange(size) * f.shape[1]) // size, f.shape[1] - 1)
  cols = np.minimum((np.arange(size) * f.shape[2]) // size, f.shape[2] - 1)
  f = f[:, rows][:, :, cols]
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, f"walk.{fmt}")
    with VideoWriter(path, fps, (size + size % 2, size + size % 2)) as video:
      video.write(np.pad(f, ((0, 0), (0, size % 2), (0, size % 2), (0, 0)), mode="edge"))
    with open(path, "rb") as fh:
      return fh.read()


def encode_poems(bodies, req: dict) -> tuple[bytes, str]:
  """(content, format) of a /v1/poems answer: JSON with each poem's 平水韻 check, plain
  text, or calligraphy sheets (PNG)."""
  if req["format"] == "text":
    return ("\n\n".join("\n".join(pingshui.verses(b)) for b in bodies) + "\n").encode(), "text"
  if req["format"] == "png":
    buf = io.BytesIO()
    calligraphy.write_sheets(bodies, [req["form"]] * len(bodies), buf)
    return buf.getvalue(), "png"
  poems = [{"text": b, "verses": pingshui.verses(b), **_checked(b, req["form"])} for b in bodies]
  return json.dumps({"model": req["model"].name, "seed": req["seed"], "form": req["form"],
                     "strict": req["strict"], "poems": poems}, ensure_ascii=False).encode(), "json"


def _checked(body: str, form: str) -> dict:
  c = pingshui.check(body, form)
  return {"rhyme": None, "tones": None} if c is None else {
      "rhyme": c["rhyme"], "tones": c["tones"], "template": c["template"], "group": c["group"]}


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


def _piece(tokens, kind: str, instruments: str = "choir", bpm: float = mood_lib.BASE_BPM) -> bytes:
  """MIDI (a track and GM program per voice) or WAV (FluidSynth when installed)."""
  buf = io.BytesIO()
  roll = enc.tokens_to_roll(tokens)
  if kind == "midi":
    render.voiced_midi_file(roll, render.parse_instruments(instruments), bpm).save(file=buf)
  else:
    render.write_audio(buf, render.render_audio(roll, instruments, bpm)[0])
  return buf.getvalue()


def encode_music(tokens, fmt: str, instruments: str = "choir", bpm: float = mood_lib.BASE_BPM,
                 register: int = 0) -> bytes:
  """One piece (midi, wav) or a zip of each piece's MIDI and WAV; `register`: every piece
  moved by that many semitones first (a mood's register)."""
  if register:
    tokens = np.asarray(enc.transpose_clipped(np.asarray(tokens), register))
  if fmt in ("midi", "wav"):
    return _piece(tokens[0], fmt, instruments, bpm)
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as z:
    for i, row in enumerate(tokens):
      z.writestr(f"piece_{i:03d}.mid", _piece(row, "midi", instruments, bpm))
      z.writestr(f"piece_{i:03d}.wav", _piece(row, "wav", instruments, bpm))
  return buf.getvalue()


def encode_png(image) -> bytes:
  buf = io.BytesIO()
  a = np.asarray(image)
  Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(buf, format="PNG")
  return buf.getvalue()


def _tool(tools: dict, kind: str, name: str | None):
  mine = {n: t for n, t in tools.items() if t.kind == kind}
  if not mine:
    raise BadRequest(404, f"this service has no {kind} model (serve a "
                          f"{'style' if kind == 'stylize' else 'repair'} run with --workdir)")
  name = name or next(iter(mine))
  if name not in mine:
    raise BadRequest(404, f"unknown {kind} model {name!r}; served: {', '.join(mine)}")
  return mine[name]


class Service:
  """The routes of create_app; the model work is `work`'s (artjax.serve.work: in this process,
  or on Ray Serve replicas). `models` / `tools` (name -> Info) are known once it started."""

  def __init__(self, settings: Settings, work):
    self.settings, self.work = settings, work
    self.models, self.tools = {}, {}
    self.auth = settings.access()
    self.registry, self.metric = _metrics(local=isinstance(work, LocalWork))
    self.state = {"ready": False, "arriving": 0}
    if hasattr(work, "observe") and work.observe is None:   # local work reports its batches
      work.observe, work.arriving = self.observe, lambda: self.state["arriving"]

  def observe(self, name, rows, depth):
    self.metric["batch"].labels(name).observe(rows)
    self.metric["queue"].labels(name).set(depth)

  @contextlib.asynccontextmanager
  async def lifespan(self, app):
    self.models, self.tools = await self.work.start()
    self.state["ready"] = True
    self.metric["ready"].set(1)
    yield
    self.state["ready"] = False
    self.metric["ready"].set(0)
    await self.work.stop()

  async def handle(self, endpoint: str, request: Request, work):
    """Access control, errors as JSON, metrics around `work(request) -> Response`."""
    t0, client = time.perf_counter(), "unknown"
    try:
      client = self.auth.check(request.headers, SCOPE.get(endpoint, endpoint))
      resp = await work(request)
    except Denied as e:
      client, resp = e.client, JSONResponse({"error": e.message}, e.status, headers=e.headers)
    except BadRequest as e:
      resp = JSONResponse({"error": e.message}, e.status, headers=e.headers)
    except asyncio.TimeoutError:
      resp = JSONResponse({"error": f"timed out after {self.settings.timeout_s} s"}, 504)
    status = str(resp.status_code)
    self.metric["requests"].labels(endpoint, status).inc()
    self.metric["clients"].labels(client, endpoint, status).inc()
    self.metric["latency"].labels(endpoint).observe(time.perf_counter() - t0)
    return resp

  def _within(self, coro):
    return asyncio.wait_for(coro, self.settings.timeout_s)

  async def generate(self, request: Request):
    st, settings = self.state, self.settings
    st["arriving"] += 1      # read and checked, not yet queued: batches wait for these
    try:
      req = parse_request(await json_body(request, settings.max_body), self.models)
    finally:
      st["arriving"] -= 1
    m = req["model"]
    if m.kind == "images":
      out = await self._within(self.work.images(m.name, req["seed"], req["labels"]))
      content = encode_images(out, req["labels"], req["seed"], req["format"], m.num_classes or 10)
    else:
      out = await self._within(self.work.music(m.name, req["seed"], req["modes"], req["key_guidance"]))
      content = await asyncio.get_running_loop().run_in_executor(
          None, encode_music, out, req["format"], req["instruments"], req["bpm"], req["register"])
    self.metric["images"].labels(m.name).inc(req["num"])
    return Response(content, media_type=MEDIA[req["format"]], headers={
        "X-Artjax-Model": m.name, "X-Artjax-Step": str(m.step), "X-Artjax-Seed": str(req["seed"])})

  async def animate(self, request: Request):
    req = parse_animate(await json_body(request, self.settings.max_body), self.models, self.settings)
    m = req["model"]
    frames = await self._within(self.work.animate(m.name, req["seed"], req["frames"], req["label"]))
    content = await asyncio.get_running_loop().run_in_executor(
        None, encode_video, frames, req["size"], req["fps"], req["format"])
    self.metric["images"].labels(m.name).inc(req["frames"])
    return Response(content, media_type=MEDIA[req["format"]], headers={
        "X-Artjax-Model": m.name, "X-Artjax-Step": str(m.step), "X-Artjax-Seed": str(req["seed"]),
        "X-Artjax-Frames": str(req["frames"])})

  async def poems(self, request: Request):
    req = parse_poems(await json_body(request, self.settings.max_body), self.models)
    if req["format"] == "png":
      try:
        calligraphy.find_font()
      except ConfigError as e:
        raise BadRequest(422, str(e)) from None
    m = req["model"]
    wire = {k: v for k, v in req.items() if k not in ("model", "format")}
    try:
      bodies = await self._within(self.work.poems(m.name, wire))
    except ValueError as e:
      raise BadRequest(422, str(e)) from None
    content, fmt = await asyncio.get_running_loop().run_in_executor(None, encode_poems, bodies, req)
    self.metric["images"].labels(m.name).inc(req["num"])
    return Response(content, media_type=MEDIA.get(fmt, "application/json"), headers={
        "X-Artjax-Model": m.name, "X-Artjax-Step": str(m.step), "X-Artjax-Seed": str(req["seed"])})

  async def stylize(self, request: Request):
    parts = await form_body(request, self.settings.max_upload, ("image",), ("model",))
    tool = _tool(self.tools, "stylize", parts.get("model"))
    if "image" not in parts:
      raise BadRequest(422, "missing the 'image' file part (curl -F image=@photo.png)")
    image = await decode_upload(parts["image"], "image")
    out = await self._within(self.work.stylize(tool.name, image))
    self.metric["images"].labels(tool.name).inc()
    return Response(encode_png(out), media_type="image/png",
                    headers={"X-Artjax-Model": tool.name, "X-Artjax-Step": str(tool.step)})

  async def repair(self, request: Request):
    parts = await form_body(request, self.settings.max_upload, ("image", "mask"), ("model",))
    tool = _tool(self.tools, "repair", parts.get("model"))
    for need in ("image", "mask"):
      if need not in parts:
        raise BadRequest(422, f"missing the '{need}' file part (curl -F image=@x.png -F mask=@m.png)")
    image, mask = await decode_upload(parts["image"], "image"), await decode_upload(parts["mask"], "mask")
    if mask.shape[:2] != image.shape[:2]:
      raise BadRequest(422, f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                            f"{image.shape[1]}x{image.shape[0]}: they must match")
    try:
      out, missing = await self._within(self.work.repair(tool.name, image, mask.mean(-1)))
    except ValueError as e:
      raise BadRequest(422, str(e)) from None
    self.metric["images"].labels(tool.name).inc()
    return Response(encode_png(out), media_type="image/png", headers={
        "X-Artjax-Model": tool.name, "X-Artjax-Step": str(tool.step),
        "X-Artjax-Missing-Pixels": str(int(missing.sum()))})

  async def healthz(self, request: Request):
    ready = self.state["ready"]
    stats = await self.work.stats() if ready else {"compiles_since_ready": 0}
    body = {"ready": ready, "device": str(jax.devices()[0]),
            "models": [m.describe() for m in (*self.models.values(), *self.tools.values())],
            "compiles_since_ready": stats["compiles_since_ready"]}
    return JSONResponse(body, 200 if ready else 503)

  async def metrics(self, request: Request):
    self.metric["compiles"].set(compiles())
    if self.state["ready"]:
      stats = await self.work.stats()
      self.metric["compiles_ready"].set(stats["compiles_since_ready"])
      for name, depth in stats["queue"].items():
        self.metric["queue"].labels(name).set(depth)
      if "batch" in stats:        # the Ray backend: the model replicas' reports
        self.metric["batch"].counts = stats["batch"]
        self.metric["replicas"].set(stats["replicas"])
    return Response(prom.generate_latest(self.registry), media_type=prom.CONTENT_TYPE_LATEST)

  def routes(self) -> list:
    def wrap(endpoint, fn):
      async def route(request: Request):
        return await self.handle(endpoint, request, fn)
      return route
    return [Route("/", page), Route("/healthz", self.healthz),
            Route("/metrics", wrap("metrics", self.metrics)),
            Route("/v1/generate", wrap("generate", self.generate), methods=["POST"]),
            Route("/v1/poems", wrap("poems", self.poems), methods=["POST"]),
            Route("/v1/animate", wrap("animate", self.animate), methods=["POST"]),
            Route("/v1/stylize", wrap("stylize", self.stylize), methods=["POST"]),
            Route("/v1/repair", wrap("repair", self.repair), methods=["POST"])]


async def page(request: Request):
  return HTMLResponse(resources.files("artjax.serve").joinpath("static/index.html").read_text())


async def http_error(request: Request, exc: HTTPException):
  return JSONResponse({"error": exc.detail}, exc.status_code)


def create_app(models: dict, settings: Settings, tools: dict | None = None, work=None) -> Starlette:
  """The ASGI app serving `models` ({name: artjax.serve.models.Model}, warmed up) and `tools`
  ({name: artjax.serve.tools.Tool}, warmed up) in this process, or, given `work` (an object
  with artjax.serve.work.LocalWork's methods), whatever that serves."""
  if work is None:
    work = LocalWork(models, tools or {}, settings.max_batch, settings.max_wait_ms)
  service = Service(settings, work)
  return Starlette(routes=service.routes(), lifespan=service.lifespan,
                   middleware=[Middleware(HeaderLimit)]
                   + ([Middleware(LoopbackGuard)] if service.auth.open else []),
                   exception_handlers={HTTPException: http_error})
