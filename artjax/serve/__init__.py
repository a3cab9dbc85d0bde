"""`run.py serve`: an HTTP service for trained, quantised or exported models.

models.py (generators: load + warm up, exported functions), tools.py (style and inpainting
networks: a user's picture in, a picture out), batcher.py (micro-batching), auth.py (tokens,
scopes, rate limits), http.py (bounded bodies, uploads), app.py (the Starlette API and
metrics), alerts.yml + dashboard.json (Prometheus alert rules, a Grafana dashboard),
static/index.html (the web page)."""

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


def check(paths, host: str, port: int, token, max_batch: int, max_wait_ms: float, max_num: int,
          tokens=None):
  """Every start-up problem as a ConfigError, before anything loads."""
  if not paths:
    raise ConfigError("serve needs at least one --workdir=RUN (a workdir or an export directory)")
  if not 0 <= port <= 65535:
    raise ConfigError(f"--port must be in 0..65535, got {port}")
  if max_batch < 1 or max_num < 1 or max_wait_ms < 0:
    raise ConfigError("--max_batch and --max_num must be >= 1 and --max_wait_ms >= 0")
  if token is not None and len(token) < 8:
    raise ConfigError("--token must have at least 8 characters")
  if token is None and tokens is None and not _loopback(host):
    raise ConfigError(f"refusing to serve on {host!r} without a token: pass --token, --tokens "
                      f"or set ${TOKEN_ENV} (only loopback addresses may go without)")
  for p in paths:
    if not os.path.isdir(p):
      raise ConfigError(f"--workdir {p!r} does not exist")


from artjax.serve.limits import KEEP_ALIVE_S, MAX_CONNECTIONS, MAX_HEADER_BYTES  # noqa: E402


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


@contextlib.contextmanager
def _reload_on_sighup(auth):
  """SIGHUP re-reads the token file (a bad file keeps the tokens in force)."""
  if not auth.tokens_file or not hasattr(signal, "SIGHUP"):
    yield
    return
  prev = signal.signal(signal.SIGHUP, lambda *_: print(auth.reload(), file=sys.stderr, flush=True))
  try:
    yield
  finally:
    signal.signal(signal.SIGHUP, prev)


BACKENDS = ("uvicorn", "ray")


def serve(paths, *, host="127.0.0.1", port=8080, token=None, tokens=None, protect_metrics=False,
          max_batch=64, max_wait_ms=5.0, max_num=64, max_music=8, timeout_s=30.0,
          image_size=256, max_upload_mb=8.0, backend="uvicorn", ray=None) -> int:
  """Loads and warms up every model, then serves until SIGTERM / SIGINT (exit 0).
  backend="ray": the same app as a Ray Serve deployment; `ray` holds its options
  (address, min_replicas, max_replicas, target_ongoing, replica_cpus, downscale_delay_s,
  ray_batching)."""
  token = token or os.environ.get(TOKEN_ENV) or None
  check(paths, host, port, token, max_batch, max_wait_ms, max_num, tokens)
  if protect_metrics and token is None and tokens is None:
    raise ConfigError("--protect_metrics needs --token or --tokens (who may read /metrics?)")
  if not 16 <= image_size <= 2048:
    raise ConfigError(f"--image_size must be in 16..2048, got {image_size}")
  if not 0 < max_upload_mb <= 256:
    raise ConfigError(f"--max_upload_mb must be in (0, 256], got {max_upload_mb}")
  if backend not in BACKENDS:
    raise ConfigError(f"--backend={backend!r}: choose one of {BACKENDS}")
  from artjax.serve import auth as auth_lib
  auth = auth_lib.Auth(token=token, tokens_file=tokens, metrics_protected=protect_metrics)
  args = {"paths": [os.path.abspath(p) for p in paths], "token": token,
          "tokens": tokens and os.path.abspath(tokens), "protect_metrics": protect_metrics,
          "max_num": max_num, "max_batch": max_batch, "max_music": max_music,
          "image_size": image_size, "max_wait_ms": max_wait_ms, "timeout_s": timeout_s,
          "max_upload": int(max_upload_mb * 2**20)}
  if backend == "ray":
    from artjax.serve import ray_backend
    opts = dict(ray or {})
    args["ray_batching"] = opts.pop("ray_batching", "artjax")
    ray_backend.check(opts.get("min_replicas", 1), opts.get("max_replicas", 1),
                      opts.get("target_ongoing", 8.0), opts.get("replica_cpus", 1.0),
                      args["ray_batching"])
    sock = bind(host, port)               # a busy port is one line, before Ray starts
    port = sock.getsockname()[1]
    sock.close()
    return ray_backend.run(args, host=host, port=port, keep_alive_s=KEEP_ALIVE_S, **opts)
  return _serve_uvicorn(args, auth, host, port)


def _serve_uvicorn(args: dict, auth, host: str, port: int) -> int:
  import uvicorn
  from artjax.serve import app as app_lib
  sock = bind(host, port)                 # a busy port is one line, before models load
  port = sock.getsockname()[1]
  print(f"listening on {host}:{port}", file=sys.stderr, flush=True)
  from artjax.serve.loading import load_all
  models, tools = load_all(args["paths"], args["max_num"], args["max_batch"], args["max_music"],
                        args["image_size"])
  settings = app_lib.Settings(token=args["token"], max_batch=args["max_batch"],
                              max_wait_ms=args["max_wait_ms"], timeout_s=args["timeout_s"],
                              max_upload=args["max_upload"], auth=auth)
  app = app_lib.create_app(models, settings, tools)
  print(f"serving {', '.join([*models, *tools])} on http://{host}:{port}/ (auth: "
        f"{auth.describe()}); Ctrl-C or SIGTERM stops"
        + ("; SIGHUP reloads the tokens" if auth.tokens_file else ""), file=sys.stderr, flush=True)
  # Limits against idle or oversized clients: idle keep-alive connections close after 5 s, a
  # request head must arrive within 10 s and be at most 16 KB however it is read
  # (serve/protocol.py), connections beyond MAX_CONNECTIONS get 503 instead of exhausting the
  # process's file limit.
  from artjax.serve.protocol import GuardedH11Protocol
  config = uvicorn.Config(app, log_level="warning", access_log=False, http=GuardedH11Protocol,
                          timeout_keep_alive=KEEP_ALIVE_S, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                          limit_concurrency=MAX_CONNECTIONS,
                          timeout_graceful_shutdown=max(5, int(args["timeout_s"])))
  with _reload_on_sighup(auth):
    _server_class()(config).run(sockets=[sock])
  print("stopped: in-flight requests finished", file=sys.stderr, flush=True)
  return 0
