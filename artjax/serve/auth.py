"""Who may call what: no token (loopback only), one bearer token, or a token file.

A token file (`run.py serve --tokens=FILE`) is JSON; it holds token hashes, never tokens:

    {"tokens": [
      {"name": "alice", "sha256": "<hex of sha256(token)>", "scopes": ["generate", "stylize"],
       "rate_per_s": 2, "burst": 10},
      {"name": "ops", "sha256": "...", "scopes": ["admin"]}]}

`printf %s "$TOKEN" | sha256sum` gives the hash. Scopes name endpoints (SCOPES); `admin`
grants every scope. `rate_per_s` / `burst` (optional) are a token bucket per name: past it a
request is 429 with `Retry-After`. The file is re-read on SIGHUP without a restart; a bad file
then keeps the tokens in force and says why on stderr (Ray Serve replicas, which no signal
reaches, re-read the file when it changes). The single `--token` is a client named
"token" with every scope and no rate limit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import math
import os
import re
import sys
import threading
import time

from artjax import ConfigError

#: endpoint scopes; "admin" grants them all ("metrics": /metrics when it is protected)
SCOPES = ("generate", "stylize", "repair", "metrics")
ADMIN = "admin"
ANONYMOUS = "anonymous"
# fullmatch: `$` would also match before a final newline ("eve\n")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HEX = re.compile(r"[0-9a-f]{64}")
#: token-bucket rates accepted (a subnormal rate overflows the bucket's 1 / rate)
RATE_RANGE = (1e-6, 1e6)
_FIELDS = {"name", "sha256", "scopes", "rate_per_s", "burst"}


class Denied(Exception):
  """A request refused by access control: status (401, 403, 429), message, headers."""

  def __init__(self, status: int, message: str, headers: dict | None = None, client: str = "unknown"):
    super().__init__(message)
    self.status, self.message, self.headers, self.client = status, message, headers or {}, client


@dataclasses.dataclass(frozen=True)
class Client:
  name: str
  scopes: frozenset
  rate_per_s: float | None = None
  burst: int = 1

  def allows(self, scope: str) -> bool:
    return ADMIN in self.scopes or scope in self.scopes


def token_hash(token: str) -> str:
  return hashlib.sha256(token.encode()).hexdigest()


def _entry(i: int, e, where: str) -> tuple[str, Client]:
  if not isinstance(e, dict):
    raise ConfigError(f"{where}: tokens[{i}] must be an object")
  unknown = sorted(set(e) - _FIELDS)
  if unknown:
    raise ConfigError(f"{where}: tokens[{i}] has unknown field {unknown[0]!r} (fields: "
                      f"{', '.join(sorted(_FIELDS))})")
  name, digest, scopes = e.get("name"), e.get("sha256"), e.get("scopes", [])
  if not isinstance(name, str) or not _NAME.fullmatch(name):
    raise ConfigError(f"{where}: tokens[{i}].name must be 1-64 letters, digits, '_.-', got {name!r}")
  if not isinstance(digest, str) or not _HEX.fullmatch(digest.lower()):
    raise ConfigError(f"{where}: tokens[{i}] ({name}).sha256 must be 64 hex digits (the hash of "
                      "the token: printf %s TOKEN | sha256sum), never the token itself")
  if not isinstance(scopes, list) or not scopes or any(s not in SCOPES + (ADMIN,) for s in scopes):
    raise ConfigError(f"{where}: tokens[{i}] ({name}).scopes must be a non-empty list of "
                      f"{', '.join(SCOPES + (ADMIN,))}, got {json.dumps(scopes)}")
  rate, burst = e.get("rate_per_s"), e.get("burst", 1)
  if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                           or not RATE_RANGE[0] <= rate <= RATE_RANGE[1]):
    raise ConfigError(f"{where}: tokens[{i}] ({name}).rate_per_s must be a number from "
                      f"{RATE_RANGE[0]:g} to {RATE_RANGE[1]:g} requests/s, got {rate!r}")
  if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
    raise ConfigError(f"{where}: tokens[{i}] ({name}).burst must be an integer >= 1")
  return digest.lower(), Client(name, frozenset(scopes), None if rate is None else float(rate),
                                burst if rate is not None else 1)


def read_token_file(path: str) -> dict[str, Client]:
  """{sha256 hex: Client}; a ConfigError naming the first problem."""
  if not os.path.isfile(path):
    raise ConfigError(f"--tokens {path!r} does not exist")
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
  except (ValueError, UnicodeDecodeError) as e:
    raise ConfigError(f"--tokens {path}: not valid JSON ({e})") from e
  if not isinstance(data, dict) or not isinstance(data.get("tokens"), list) or not data["tokens"]:
    raise ConfigError(f'--tokens {path}: expected {{"tokens": [{{"name", "sha256", "scopes"}}, ...]}}')
  out, names = {}, set()
  for i, e in enumerate(data["tokens"]):
    digest, client = _entry(i, e, f"--tokens {path}")
    if digest in out or client.name in names:
      raise ConfigError(f"--tokens {path}: tokens[{i}] repeats a name or a hash ({client.name})")
    out[digest], names = client, names | {client.name}
  return out


class Bucket:
  """A token bucket: `take()` -> 0 when allowed, else the seconds until one request is."""

  def __init__(self, rate: float, burst: int, clock=time.monotonic):
    self.rate, self.burst, self.clock = rate, burst, clock
    self.level, self.t = float(burst), clock()

  def take(self) -> float:
    now = self.clock()
    self.level = min(self.burst, self.level + (now - self.t) * self.rate)
    self.t = now
    if self.level >= 1.0:
      self.level -= 1.0
      return 0.0
    return (1.0 - self.level) / self.rate


class Auth:
  """Access control for the service (see the module docstring). `metrics_protected`: /metrics
  needs a token with the "metrics" (or "admin") scope; otherwise it is open, as for a
  Prometheus scraping the host."""

  def __init__(self, token: str | None = None, tokens_file: str | None = None,
               metrics_protected: bool = False, clock=time.monotonic, watch: bool = False):
    self.token, self.tokens_file, self.clock = token, tokens_file, clock
    self.metrics_protected = metrics_protected
    self.clients = read_token_file(tokens_file) if tokens_file else {}
    # watch: re-read the file when it changes (checked at most once a second): how replicas
    # that no signal reaches (Ray Serve) follow an edited token file
    self.watch, self._seen, self._checked = watch and bool(tokens_file), self._mtime(), 0.0
    self.buckets: dict[str, Bucket] = {}
    self.lock = threading.Lock()

  @property
  def open(self) -> bool:
    """No credentials configured: loopback clients only, no checks."""
    return self.token is None and not self.tokens_file

  def describe(self) -> str:
    if self.open:
      return "none, loopback only"
    parts = (["bearer token"] if self.token else []) + (
        [f"{len(self.clients)} token(s) from {self.tokens_file}"] if self.tokens_file else [])
    return " + ".join(parts)

  def reload(self) -> str:
    """Re-reads the token file (SIGHUP); a bad file keeps the tokens in force. One line back."""
    if not self.tokens_file:
      return "no --tokens file to reload"
    try:
      clients = read_token_file(self.tokens_file)
    except ConfigError as e:
      return f"error: {e}; keeping the {len(self.clients)} token(s) in force"
    with self.lock:
      self.clients = clients
      self.buckets = {n: b for n, b in self.buckets.items()
                      if any(c.name == n for c in clients.values())}
    return f"reloaded {len(clients)} token(s) from {self.tokens_file}"

  def _mtime(self):
    try:
      return os.stat(self.tokens_file).st_mtime_ns if self.tokens_file else None
    except OSError:
      return None

  def _follow(self) -> None:
    now = time.monotonic()
    if now - self._checked < 1.0:
      return
    self._checked = now
    seen = self._mtime()
    if seen != self._seen:
      self._seen = seen
      print(self.reload(), file=sys.stderr, flush=True)

  def _client(self, headers) -> Client | None:
    header = headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
      raise Denied(401, "missing bearer token (Authorization: Bearer TOKEN)", client=ANONYMOUS)
    given = header[7:].strip()
    if self.token is not None and hmac.compare_digest(given.encode(), self.token.encode()):
      return Client("token", frozenset((ADMIN,)))
    with self.lock:
      return self.clients.get(token_hash(given))

  def check(self, headers, scope: str) -> str:
    """The client's name if the request may use `scope`; Denied (401/403/429) otherwise."""
    if self.open or (scope == "metrics" and not self.metrics_protected):
      return ANONYMOUS
    if self.watch:
      self._follow()
    client = self._client(headers)
    if client is None:
      raise Denied(403, "wrong token")
    if not client.allows(scope):
      raise Denied(403, f"token {client.name!r} lacks the {scope!r} scope", client=client.name)
    if client.rate_per_s is not None:
      with self.lock:
        b = self.buckets.get(client.name)
        if b is None or (b.rate, b.burst) != (client.rate_per_s, client.burst):
          b = self.buckets[client.name] = Bucket(client.rate_per_s, client.burst, self.clock)
        wait = b.take()
      if wait > 0:
        raise Denied(429, f"rate limit of {client.rate_per_s:g} requests/s (burst {client.burst}) "
                          f"for {client.name!r}: retry in {wait:.2f} s",
                     {"Retry-After": str(max(1, math.ceil(wait)))}, client.name)
    return client.name
