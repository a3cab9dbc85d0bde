"""`run.py serve`: an HTTP service for trained, quantised or exported models.

models.py (load + warm up, exported functions), batcher.py (micro-batching), app.py (the
Starlette API, auth, validation, metrics), static/index.html (the web page)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import sys

from artjax import ConfigError

TOKEN_ENV = "ARTJAX_TOKEN"


def _loopback(host: str) -> bool:
  if host == "localhost":
    return True
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


def _server_class():
  import uvicorn

  class Server(uvicorn.Server):
    """uvicorn's server, but SIGTERM / SIGINT end it with exit status 0: uvicorn re-raises a
    captured signal after its graceful shutdown, which would kill the process with it."""

    @contextlib.contextmanager
    def capture_signals(self):
      old = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
      try:
        yield
      finally:
        for s, h in old.items():
          signal.signal(s, h)
  return Server


def check(paths, host: str, port: int, token, max_batch: int, max_wait_ms: float, max_num: int):
  """Every start-up problem as a ConfigError, before anything loads."""
  if not paths:
    raise ConfigError("serve needs at least one --workdir=RUN (a workdir or an export directory)")
  if not 0 <= port <= 65535:
    raise ConfigError(f"--port must be in 0..65535, got {port}")
  if max_batch < 1 or max_num < 1 or max_wait_ms < 0:
    raise ConfigError("--max_batch and --max_num must be >= 1 and --max_wait_ms >= 0")
  if token is not None and len(token) < 8:
    raise ConfigError("--token must have at least 8 characters")
  if token is None and not _loopback(host):
    raise ConfigError(f"refusing to serve on {host!r} without a token: pass --token or set "
                      f"${TOKEN_ENV} (only loopback addresses may go without)")
  for p in paths:
    if not os.path.isdir(p):
      raise ConfigError(f"--workdir {p!r} does not exist")


KEEP_ALIVE_S = 5
MAX_HEADER_BYTES = 16 * 1024
MAX_CONNECTIONS = 256


def bind(host: str, port: int):
  """A listening socket on host:port (port 0: any free one); a ConfigError if it is taken."""
  import socket
  family = socket.AF_INET6 if ":" in host else socket.AF_INET
  sock = socket.socket(family, socket.SOCK_STREAM)
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  try:
    sock.bind((host, port))
  except OSError as e:
    sock.close()
    raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e} (another server? "
                      "choose --port, or --port=0 for any free port)") from e
  sock.listen(2048)
  sock.set_inheritable(True)
  return sock


def serve(paths, *, host="127.0.0.1", port=8080, token=None, max_batch=64, max_wait_ms=5.0,
          max_num=64, max_music=8, timeout_s=30.0) -> int:
  """Loads and warms up every model, then serves until SIGTERM / SIGINT (exit 0)."""
  token = token or os.environ.get(TOKEN_ENV) or None
  check(paths, host, port, token, max_batch, max_wait_ms, max_num)
  import uvicorn
  from artjax.serve import app as app_lib, models as models_lib
  sock = bind(host, port)                 # a busy port is one line, before models load
  port = sock.getsockname()[1]
  print(f"listening on {host}:{port}", file=sys.stderr, flush=True)
  models = {}
  for name, path in zip(models_lib.names(paths), paths):
    m = models_lib.load(path, name, max_num, max_batch, max_music)
    print(f"loading {name}: {m.manifest['model']}, step {m.step}; compiling batch sizes "
          f"{list(m.buckets)}", file=sys.stderr, flush=True)
    m.warm_up()
    models[name] = m
  settings = app_lib.Settings(token=token, max_batch=max_batch, max_wait_ms=max_wait_ms,
                              timeout_s=timeout_s)
  app = app_lib.create_app(models, settings)
  print(f"serving {', '.join(models)} on http://{host}:{port}/ (auth: "
        f"{'bearer token' if token else 'none, loopback only'}); Ctrl-C or SIGTERM stops",
        file=sys.stderr, flush=True)
  # Limits against idle or oversized clients: idle keep-alive connections close after 5 s,
  # request headers above 16 KB are refused (h11), connections beyond MAX_CONNECTIONS get
  # 503 instead of exhausting the process's file limit.
  config = uvicorn.Config(app, log_level="warning", access_log=False, http="h11",
                          timeout_keep_alive=KEEP_ALIVE_S, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                          limit_concurrency=MAX_CONNECTIONS,
                          timeout_graceful_shutdown=max(5, int(timeout_s)))
  _server_class()(config).run(sockets=[sock])
  print("stopped: in-flight requests finished", file=sys.stderr, flush=True)
  return 0
