"""Reading requests safely: bounded bodies (JSON or multipart uploads), typed fields, uploaded
images, and the loopback guard of a service without a token. Every problem is a BadRequest
(a 4xx with a JSON body), never a 500; uploads stay in memory (nothing is written to disk)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import re
import secrets
import warnings
import weakref

import numpy as np
from PIL import Image, UnidentifiedImageError
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from typing import Callable

from artjax.image.io import to_rgb
from artjax.serve.limits import MAX_HEADER_BYTES

MAX_SEED = 2**31 - 1
MAX_JSON_DEPTH = 32
BODY_TIMEOUT_S = 10.0
#: an uploaded picture may have at most this many pixels (checked from its header, before
#: decoding: a decompression bomb is refused without being expanded)
MAX_UPLOAD_PIXELS = 4096 * 4096


class BadRequest(Exception):
  def __init__(self, status: int, message: str, headers: dict | None = None):
    super().__init__(message)
    self.status, self.message, self.headers = status, message, headers or {}


@dataclasses.dataclass(frozen=True)
class Endpoint:
  """A modality's answer to one route (artjax.serve.modalities.ROUTES) for the served models
  of its `kind`: the app reads the body and picks the model; then

      parse(body, info, settings) -> request      (BadRequest with the first problem)
      await run(work, info, request) -> output     (the backend's work; ValueError = a 422)
      encode(output, info, request) -> (bytes, format)    (on a worker thread)

  `accepts(info)`: whether a served model of this kind answers here (default: all);
  `items(request)`: what the item counter counts; `headers(request, output)`: extra headers."""
  kind: str
  parse: Callable
  run: Callable
  encode: Callable
  accepts: Callable = lambda info: True
  items: Callable = lambda req: req.get("num", 1)
  headers: Callable = lambda req, out: {}


def unknown_fields(body: dict, allowed: set, what: str = "") -> None:
  """422 naming the first field of `body` not in `allowed` (and the allowed ones)."""
  unknown = sorted(set(body) - allowed)
  if unknown:
    raise BadRequest(422, f"unknown field {unknown[0]!r}{f' for {what}' if what else ''}; "
                          f"fields: {', '.join(sorted(allowed))}")


def counted_request(body: dict, allowed: set, what: str, max_num: int, formats: tuple,
                    default_format: str) -> dict:
  """The fields every generation request shares, checked: no unknown field, `num` in
  1..max_num, `seed` (a random one when absent), `format` one of `formats`."""
  unknown_fields(body, allowed, what)
  req = {"num": field(body, "num", int, 1, 1, max_num),
         "seed": field(body, "seed", int, secrets.randbelow(MAX_SEED), 0, MAX_SEED),
         "format": field(body, "format", str, default_format)}
  if req["format"] not in formats:
    raise BadRequest(422, f"unknown format {req['format']!r}; choose one of {', '.join(formats)}")
  return req


def pick(name: str | None, served: dict, path: str, what: str, elsewhere: str):
  """The served model called `name` (None: the first) among `served` (404 when there is none
  or it is unknown here)."""
  if not served:
    raise BadRequest(404, f"this service serves no {what} for {path} ({elsewhere}; see GET "
                          "/healthz)")
  name = next(iter(served)) if name is None else name
  if name not in served:
    raise BadRequest(404, f"unknown {what} {name!r} for {path}; served: {', '.join(served)}")
  return served[name]


def field(body: dict, name: str, kind, default, lo=None, hi=None):
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


async def raw_body(request: Request, limit: int) -> bytes:
  """The body, at most `limit` bytes (413 past it), within BODY_TIMEOUT_S (408)."""
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
    return await asyncio.wait_for(read(), BODY_TIMEOUT_S)
  except asyncio.TimeoutError:
    raise BadRequest(408, f"the body did not arrive within {BODY_TIMEOUT_S} s") from None
  except ClientDisconnect:
    raise BadRequest(400, "the client went away before its body arrived") from None


async def json_body(request: Request, limit: int):
  data = await raw_body(request, limit)
  if json_depth(data) > MAX_JSON_DEPTH:
    raise BadRequest(400, f"the body nests deeper than {MAX_JSON_DEPTH} levels")
  try:
    return json.loads(data or b"null")
  except (ValueError, UnicodeDecodeError) as e:
    raise BadRequest(400, f"the body is not valid JSON: {e}") from e


async def form_body(request: Request, limit: int, files: tuple, fields: tuple) -> dict:
  """A multipart/form-data body: {name: bytes} for the file parts in `files` and {name: str}
  for the text fields in `fields` (anything else is a 422). Held in memory only."""
  ctype = request.headers.get("content-type", "")
  if not ctype.lower().startswith("multipart/form-data"):
    raise BadRequest(415, "send multipart/form-data (a file upload), e.g. curl -F image=@photo.png")
  data = await raw_body(request, limit)

  async def stream():
    yield data
  parser = MultiPartParser(request.headers, stream(), max_files=len(files) + 1, max_fields=len(fields) + 1,
                           max_part_size=4096)
  parser.spool_max_size = limit + 1           # never spilled to a temporary file
  try:
    form = await parser.parse()
  except MultiPartException as e:
    raise BadRequest(400, f"malformed multipart body: {e.message}") from None
  try:
    out = {}
    for name, value in form.multi_items():
      if name in out or name not in files + fields:
        raise BadRequest(422, f"unexpected or repeated part {name!r}; parts: {', '.join(files + fields)}")
      is_file = not isinstance(value, str)
      if is_file != (name in files):
        raise BadRequest(422, f"part {name!r} must be {'a file' if name in files else 'a text field'}")
      out[name] = await value.read() if is_file else value
    return out
  finally:
    await form.close()


#: uploads decoded at once (each may take ~0.6 s and a few hundred MB at MAX_UPLOAD_PIXELS);
#: further ones wait their turn instead of pushing the process's memory up
MAX_DECODES = 2
_DECODE_SLOTS = weakref.WeakKeyDictionary()   # event loop -> its semaphore


async def decode_upload(data: bytes, what: str, max_pixels: int = MAX_UPLOAD_PIXELS) -> np.ndarray:
  """`decode_image` in a worker thread, off the event loop (health checks and other requests
  keep being answered while a large picture decodes), at most MAX_DECODES at once."""
  loop = asyncio.get_running_loop()
  slots = _DECODE_SLOTS.setdefault(loop, asyncio.Semaphore(MAX_DECODES))
  async with slots:
    return await loop.run_in_executor(None, decode_image, data, what, max_pixels)


def decode_image(data: bytes, what: str, max_pixels: int = MAX_UPLOAD_PIXELS) -> np.ndarray:
  """An uploaded PNG/JPEG -> float32 [H, W, 3] in [0, 1] (alpha composited on white); the
  pixel count is checked from the header before decoding."""
  if not data:
    raise BadRequest(422, f"{what}: the file is empty")
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      im = Image.open(io.BytesIO(data))
      if im.format not in ("PNG", "JPEG"):
        raise BadRequest(415, f"{what}: a {im.format} file; send a PNG or JPEG")
      if im.width * im.height > max_pixels:
        raise BadRequest(413, f"{what}: {im.width}x{im.height} is more than {max_pixels:,} pixels")
      im.load()
  except BadRequest:
    raise
  except (Image.DecompressionBombError, Image.DecompressionBombWarning):
    raise BadRequest(413, f"{what}: claims more pixels than allowed") from None
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    raise BadRequest(422, f"{what}: not a readable PNG or JPEG ({' '.join(str(e).split())[:120]})") from None
  return to_rgb(im)   # the CLI's decoder (artjax.image.io): 16-bit greyscale stays exact


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(:[0-9]{1,5})?")


def hostname(value: str) -> str:
  """The host of a Host header ("127.0.0.1:8080", "[::1]:80") or of an Origin URL; "" for
  anything that is not exactly a host and an optional port ("localhost:80@evil.com")."""
  from urllib.parse import urlsplit
  if "//" in value:
    try:
      return (urlsplit(value).hostname or "").lower()
    except ValueError:
      return ""
  m = _HOST.fullmatch(value.strip().lower())
  if not m:
    return ""
  host = m.group(1)
  return host[1:-1] if host.startswith("[") else host


class HeaderLimit:
  """A request head over artjax.serve.MAX_HEADER_BYTES is 431 JSON, whatever HTTP server is in
  front: the single process's protocol refuses it before parsing (serve/protocol.py); Ray
  Serve's proxy, whose limits cannot be set, passes it on and this refuses it here."""

  def __init__(self, app):
    self.app = app

  async def __call__(self, scope, receive, send):
    if scope["type"] == "http":
      size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + sum(
          len(k) + len(v) + 4 for k, v in scope["headers"])
      if size > MAX_HEADER_BYTES:
        resp = JSONResponse({"error": f"request headers of {size:,} bytes: at most "
                             f"{MAX_HEADER_BYTES:,}"}, 431)
        await resp(scope, receive, send)
        return
    await self.app(scope, receive, send)


class LoopbackGuard:
  """Without a token the service trusts only this machine: a request must name a loopback
  Host, and an Origin (a web page's request) must be a loopback page too. Otherwise a page
  the user visits could drive the service (DNS rebinding, cross-origin POSTs): 403 JSON."""

  def __init__(self, app):
    self.app = app

  async def __call__(self, scope, receive, send):
    if scope["type"] == "http":
      values = {}
      for k, v in scope["headers"]:
        values.setdefault(k.decode("latin-1").lower(), []).append(v.decode("latin-1"))
      hosts, origins = values.get("host", [""]), values.get("origin", [])
      # exactly one Host and at most one Origin: of two, neither may be chosen silently
      bad = ("Host" if len(hosts) != 1 or hostname(hosts[0]) not in LOOPBACK_NAMES else
             "Origin" if len(origins) > 1 or (origins and hostname(origins[0]) not in LOOPBACK_NAMES)
             else None)
      if bad:
        shown = ", ".join(values.get(bad.lower(), [""]))
        resp = JSONResponse({"error": f"{bad} {shown!r} refused: without a "
                             "token this service answers loopback clients only"}, 403)
        await resp(scope, receive, send)
        return
    await self.app(scope, receive, send)
