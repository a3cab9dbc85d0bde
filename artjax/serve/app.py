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

This module routes, guards and counts: access control, errors as JSON, metrics, the web page,
health. What a request means and how its answer is made belongs to the modality serving the
model it names (artjax.serve.modalities: parse, run, encode); where the model work runs
belongs to the backend (artjax.serve.work.LocalWork in this process, or Ray Serve replicas),
behind one interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from importlib import resources

import jax
import prometheus_client as prom
from prometheus_client.core import HistogramMetricFamily
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from artjax.serve.auth import Auth, Denied
from artjax.serve.counts import BATCH_BUCKETS
from artjax.serve.http import (BadRequest, HeaderLimit, LoopbackGuard, field, form_body, json_body,
                               pick)
from artjax.serve.modalities import ROUTES
from artjax.serve.served import compiles
from artjax.serve.work import LocalWork

MEDIA = {"png": "image/png", "npz": "application/octet-stream", "midi": "audio/midi",
         "wav": "audio/wav", "zip": "application/zip", "text": "text/plain; charset=utf-8",
         "json": "application/json", "mp4": "video/mp4", "gif": "image/gif"}
SCOPE = {"poems": "generate", "animate": "generate"}     # endpoints sharing another's scope


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


class Service:
  """The routes of create_app; the model work is `work`'s (artjax.serve.work: in this process,
  or on Ray Serve replicas). `models` / `tools` (name -> Info) are known once it started."""

  def __init__(self, settings: Settings, work):
    self.settings, self.work = settings, work
    self.models, self.tools = {}, {}
    self.auth = settings.access()
    self.registry, self.metric = _metrics(local=work.reports_batches)
    self.state = {"ready": False, "arriving": 0}
    work.attach(self.observe, lambda: self.state["arriving"])

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

  async def answer(self, name: str, request: Request):
    """A POST route (artjax.serve.modalities.ROUTES): the body read, the served model picked,
    the request handed to the endpoint of that model's kind (parse, run, encode)."""
    route, st = ROUTES[name], self.state
    st["arriving"] += route.counts_arrivals  # read and checked, not yet queued: batches wait
    try:
      body, info = await self._read(route, request)
      endpoint = route.endpoint(info)
      req = endpoint.parse(body, info, self.settings)
    finally:
      st["arriving"] -= route.counts_arrivals
    try:
      out = await self._within(endpoint.run(self.work, info, req))
    except ValueError as e:           # a request this model cannot do (an empty mask, a form)
      raise BadRequest(422, str(e)) from None
    content, fmt = await asyncio.get_running_loop().run_in_executor(
        None, endpoint.encode, out, info, req)
    self.metric["images"].labels(info.name).inc(endpoint.items(req))
    seed = {"X-Artjax-Seed": str(req["seed"])} if "seed" in req else {}
    return Response(content, media_type=MEDIA[fmt], headers={
        "X-Artjax-Model": info.name, "X-Artjax-Step": str(info.step), **seed,
        **endpoint.headers(req, out)})

  async def _read(self, route, request: Request):
    """(the body: a JSON object or the upload's parts, the served model it names)."""
    if route.files:
      body = await form_body(request, self.settings.max_upload, route.files, ("model",))
      name = body.get("model") or None
    else:
      body = await json_body(request, self.settings.max_body)
      if not isinstance(body, dict):
        raise BadRequest(400, "the body must be a JSON object")
      name = field(body, "model", str, "") or None
    served = {n: i for n, i in {**self.models, **self.tools}.items() if route.endpoint(i)}
    return body, pick(name, served, route.path, route.what, route.elsewhere)

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
            *[Route(r.path, wrap(name, functools.partial(self.answer, name)), methods=["POST"])
              for name, r in ROUTES.items()]]


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
