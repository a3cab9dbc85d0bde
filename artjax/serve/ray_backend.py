"""`run.py serve --backend=ray`: the same application as a Ray Serve deployment.

Two deployments behind Ray Serve's HTTP proxy on --host:--port:
  artjax  the ingress: the very app the single process serves (`app.create_app`: auth,
          validation, metrics, page), one replica holding no model; its work goes to
  models  the model replicas (`ray_replica.ModelReplica`): each loads and compiles the same
          exported functions and batches image requests with artjax's micro-batcher or with
          Ray Serve's `@serve.batch` (--ray_batching). They autoscale on ongoing requests
          between --min_replicas and --max_replicas (Ray Serve's autoscaler, --target_ongoing
          per replica), and report their batches to a named actor that /metrics reads.
A call whose model replica dies (kill -9, a lost node) is retried on another (requests are
pure functions of their seed and inputs, so a retry gives the same answer); the controller
replaces the replica; when no replica answers after the retries the client gets a 503 JSON. The command starts a local Ray (or
joins --address=ray://... / auto) and, on SIGTERM / Ctrl-C, deletes the application
(replicas drain their in-flight requests) and stops the Ray it started: exit 0.

Ray is an optional extra (`pip install 'artjax[ray]'`); without it --backend=ray is one error.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from artjax import ConfigError
from artjax.serve import ray_replica

APP_NAME = "artjax"


def check(min_replicas: int, max_replicas: int, target_ongoing: float, replica_cpus: float,
          ray_batching: str = "artjax") -> None:
  if ray_batching not in ray_replica.BATCHING:
    raise ConfigError(f"--ray_batching={ray_batching!r}: choose one of {ray_replica.BATCHING}")
  if not 1 <= min_replicas <= max_replicas <= 64:
    raise ConfigError(f"need 1 <= --min_replicas ({min_replicas}) <= --max_replicas "
                      f"({max_replicas}) <= 64")
  if not target_ongoing > 0:
    raise ConfigError(f"--target_ongoing must be > 0, got {target_ongoing}")
  if not 0 < replica_cpus <= 64:
    raise ConfigError(f"--replica_cpus must be in (0, 64], got {replica_cpus}")
  try:
    import ray  # noqa: F401
    from ray import serve  # noqa: F401
  except ImportError:
    raise ConfigError("--backend=ray needs Ray Serve: pip install 'ray[serve]' (or "
                      "pip install -e '.[ray]')") from None


MODELS = "models"        # the deployment holding the models (autoscaled replicas)
INGRESS = "artjax"       # the HTTP app (auth, validation, metrics, page): no models
RETRIES = 3              # a call whose replica died is retried on another this often


class RemoteWork:
  """LocalWork's interface over the model replicas: a call whose replica died (kill -9, a
  lost node) is retried on another replica; when none answers, a 503 JSON."""

  reports_batches = False    # the replicas count their batches (merged in `stats`)

  def __init__(self, handle, board):
    self.handle, self.board = handle, board

  def attach(self, observe, arriving) -> None:
    """Nothing to attach: the batches run in the replicas' processes."""

  async def start(self):
    from artjax.serve.work import Info
    models, tools = await self._retry(lambda: self.handle.describe.remote())
    return ({d["name"]: Info.of(d) for d in models}, {d["name"]: Info.of(d) for d in tools})

  async def stop(self):
    return None

  async def _retry(self, send):
    import asyncio
    from ray import exceptions
    from artjax.serve.http import BadRequest
    for attempt in range(RETRIES + 1):
      try:
        return await send()
      except (exceptions.RayActorError, exceptions.ActorUnavailableError) as e:
        if attempt == RETRIES:
          raise BadRequest(503, f"no model replica answered after {RETRIES + 1} tries "
                                f"({type(e).__name__}); retry shortly", {"Retry-After": "2"}) from None
        await asyncio.sleep(0.2 * 2 ** attempt)

  async def _call(self, method, *args):
    status, out = await self._retry(lambda: self.handle.call.remote(method, *args))
    if status == "bad":
      raise ValueError(out)
    return out

  async def images(self, name, seed, labels):
    return await self._call("images", name, seed, labels)

  async def music(self, name, seed, modes, key_guidance):
    return await self._call("music", name, seed, modes, key_guidance)

  async def stylize(self, name, image):
    return await self._call("stylize", name, image)

  async def animate(self, name, seed, frames, label):
    return await self._call("animate", name, seed, frames, label)

  async def poems(self, name, request):
    return await self._call("poems", name, request)

  async def repair(self, name, image, mask):
    return await self._call("repair", name, image, mask)

  async def stats(self):
    """Every model replica's last report, merged (ray_replica.StatsBoard)."""
    return await self.board.merged.remote()


def build_ingress(args: dict):
  """The HTTP app of the ingress replica: the same app, its work on the model replicas."""
  from ray import serve
  from artjax.serve import app as app_lib, auth as auth_lib
  auth = auth_lib.Auth(token=args["token"], tokens_file=args["tokens"],
                       metrics_protected=args["protect_metrics"], watch=True)
  settings = app_lib.Settings(token=args["token"], max_batch=args["max_batch"],
                              max_wait_ms=args["max_wait_ms"], timeout_s=args["timeout_s"],
                              max_upload=args["max_upload"], auth=auth)
  import ray
  work = RemoteWork(serve.get_deployment_handle(MODELS, app_name=APP_NAME),
                    ray.get_actor(ray_replica.STATS, namespace=ray_replica.NAMESPACE))
  return app_lib.create_app({}, settings, work=work)


class Ingress:
  def __init__(self, models_handle):
    self.models_handle = models_handle     # bound so that serve.run deploys the model replicas


def application(args: dict, min_replicas: int, max_replicas: int, target_ongoing: float,
                replica_cpus: float, downscale_delay_s: float = 30.0):
  """Ingress (1 replica, no CPU reserved) -> ModelReplica (autoscaled)."""
  from ray import serve
  models = serve.deployment(
      ray_replica.ModelReplica, name=MODELS,
      autoscaling_config={"min_replicas": min_replicas, "initial_replicas": min_replicas,
                          "max_replicas": max_replicas, "target_ongoing_requests": target_ongoing,
                          "upscale_delay_s": 3.0, "downscale_delay_s": downscale_delay_s,
                          "metrics_interval_s": 1.0, "look_back_period_s": 5.0},
      ray_actor_options={"num_cpus": replica_cpus},
      max_ongoing_requests=max(4 * int(target_ongoing), 64),
      graceful_shutdown_timeout_s=max(5.0, args["timeout_s"]),
      health_check_period_s=2.0, health_check_timeout_s=30.0).bind(args)
  ingress = serve.deployment(serve.ingress(lambda: build_ingress(args))(Ingress), name=INGRESS,
                             num_replicas=1, ray_actor_options={"num_cpus": 0},
                             max_ongoing_requests=1024,
                             graceful_shutdown_timeout_s=max(5.0, args["timeout_s"]))
  return ingress.bind(models)


def _wait_for_signal() -> None:
  stop = threading.Event()
  prev = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    while not stop.wait(0.5):
      pass
  finally:
    for s, h in prev.items():
      signal.signal(s, h)


def run(args: dict, *, host: str, port: int, address: str | None, min_replicas: int,
        max_replicas: int, target_ongoing: float, replica_cpus: float,
        downscale_delay_s: float = 30.0, keep_alive_s: int = 5) -> int:
  """Starts (or joins) Ray, deploys, serves until SIGTERM / SIGINT, drains: exit 0. Ray's
  proxy closes idle keep-alive connections after `keep_alive_s` like the single process (its
  own default, 90 s, lets idle clients hold sockets)."""
  import ray
  from ray import serve
  started = address is None
  env = {k: v for k, v in os.environ.items() if k.startswith(("ARTJAX_", "JAX_", "XLA_"))}
  ray.init(address=address, include_dashboard=False, log_to_driver=False,
           configure_logging=False, runtime_env={"env_vars": env},
           **({"num_cpus": os.cpu_count()} if started else {}))
  try:
    serve.start(http_options={"host": host, "port": port, "keep_alive_timeout_s": keep_alive_s},
                logging_config={"log_level": "WARNING"})
    board = ray.remote(ray_replica.StatsBoard).options(  # noqa: F841  (lives while we hold it)
        name=ray_replica.STATS, namespace=ray_replica.NAMESPACE, num_cpus=0,
        get_if_exists=True).remote()
    t0 = time.time()
    print(f"deploying {min_replicas}..{max_replicas} replica(s) on Ray "
          f"({'local' if started else address}); each loads and compiles its models",
          file=sys.stderr, flush=True)
    serve.run(application(args, min_replicas, max_replicas, target_ongoing, replica_cpus,
                          downscale_delay_s), name=APP_NAME, route_prefix="/")
    print(f"serving on http://{host}:{port}/ with Ray Serve after {time.time() - t0:.0f} s "
          f"(autoscaling {min_replicas}..{max_replicas} replicas at {target_ongoing:g} ongoing "
          "requests each); Ctrl-C or SIGTERM stops", file=sys.stderr, flush=True)
    _wait_for_signal()
    print("stopping: draining replicas", file=sys.stderr, flush=True)
    drained = _bounded(lambda: (serve.delete(APP_NAME), serve.shutdown()), args["timeout_s"] + 30)
  finally:
    _bounded(ray.shutdown, 30)
  print("stopped: in-flight requests finished" if drained else
        "stopped: Ray did not answer while draining (was it signalled too?)", file=sys.stderr, flush=True)
  return 0


def _bounded(fn, timeout_s: float) -> bool:
  """fn() on a thread, waited for at most timeout_s (a Ray whose own processes were
  signalled with ours, e.g. Ctrl-C to the whole process group, never answers)."""
  t = threading.Thread(target=fn, daemon=True)
  t.start()
  t.join(timeout_s)
  return not t.is_alive()
