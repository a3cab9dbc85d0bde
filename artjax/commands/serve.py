"""`run.py serve`: the HTTP service and web page over exported or trained runs."""

from __future__ import annotations

from absl import flags

from artjax.commands.options import repeated

SUMMARY = ("HTTP service + web page: generate, stylize, repair; micro-batched, tokens with "
           "scopes and rate limits, Prometheus metrics")
USAGE = ("serve --workdir=W [--workdir=W2 ...] [--token=T | --tokens=FILE] [--host=H] "
         "[--port=P]")


def define(fv, argv):
  d = dict(flag_values=fv)
  flags.DEFINE_multi_string("workdir", [], "A run or an exported artifact directory to serve "
                            "(repeat for several models).", **d)
  flags.DEFINE_string("host", "127.0.0.1", "Address to listen on.", **d)
  flags.DEFINE_integer("port", 8080, "TCP port (0 = any free port).", **d)
  flags.DEFINE_string("token", None, "Bearer token for /v1/* (or $ARTJAX_TOKEN).", **d)
  flags.DEFINE_string("tokens", None, "Token file: JSON of token sha256 hashes with a name, "
                      "scopes and an optional rate limit each (docs/serve.md); SIGHUP reloads "
                      "it.", **d)
  flags.DEFINE_bool("protect_metrics", False, "/metrics needs a token with the 'metrics' or "
                    "'admin' scope.", **d)
  flags.DEFINE_integer("image_size", 256, "Style networks: an upload's longest side is scaled "
                       "to this (one compiled size).", **d)
  flags.DEFINE_float("max_upload_mb", 8.0, "Largest upload (/v1/stylize, /v1/repair) in MiB.", **d)
  flags.DEFINE_enum("backend", "uvicorn", ["uvicorn", "ray"], "uvicorn: one process; ray: the "
                    "same app as an autoscaling Ray Serve deployment (pip install 'ray[serve]').", **d)
  flags.DEFINE_string("address", None, "Ray only: an existing Ray cluster (e.g. auto or "
                      "ray://HOST:10001); default: start a local Ray and stop it on exit.", **d)
  flags.DEFINE_integer("min_replicas", 1, "Ray only: fewest replicas.", **d)
  flags.DEFINE_integer("max_replicas", 1, "Ray only: most replicas (autoscaling between).", **d)
  flags.DEFINE_float("target_ongoing", 8.0, "Ray only: ongoing requests per replica the "
                     "autoscaler aims at.", **d)
  flags.DEFINE_float("replica_cpus", 1.0, "Ray only: CPUs reserved per replica.", **d)
  flags.DEFINE_float("downscale_delay_s", 30.0, "Ray only: idle time before a replica is "
                     "removed.", **d)
  flags.DEFINE_enum("ray_batching", "artjax", ["artjax", "serve"], "Ray only: who merges "
                    "image requests in a model replica: artjax's micro-batcher (waits only while "
                    "requests are arriving) or Ray Serve's @serve.batch (waits --max_wait_ms "
                    "unless the batch is full).", **d)
  flags.DEFINE_integer("max_batch", 64, "Most image rows merged into one call.", **d)
  flags.DEFINE_float("max_wait_ms", 5.0, "How long a call waits for more requests.", **d)
  flags.DEFINE_integer("max_num", 64, "Most images (pieces: at most 8) per request.", **d)


def run(FLAGS, args, argv):
  from artjax import serve
  return serve.serve(repeated(argv, "workdir"), host=FLAGS.host, port=FLAGS.port,
                     token=FLAGS.token, tokens=FLAGS.tokens, protect_metrics=FLAGS.protect_metrics,
                     max_batch=FLAGS.max_batch, max_wait_ms=FLAGS.max_wait_ms,
                     max_num=FLAGS.max_num, image_size=FLAGS.image_size,
                     max_upload_mb=FLAGS.max_upload_mb, backend=FLAGS.backend,
                     ray={"address": FLAGS.address, "min_replicas": FLAGS.min_replicas,
                          "max_replicas": FLAGS.max_replicas, "target_ongoing": FLAGS.target_ongoing,
                          "replica_cpus": FLAGS.replica_cpus,
                          "downscale_delay_s": FLAGS.downscale_delay_s,
                          "ray_batching": FLAGS.ray_batching})
