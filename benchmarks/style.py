"""Style transfer, quality and speed, in one run (JSON in benchmarks/results, a markdown table
on stdout for docs/style.md).

Quality: `run.py stylize` defaults on content/style pairs of scikit-image photos at 256 px, for
each feature network, scored by a HELD-OUT random network (artjax.image.metrics: another seed,
other filter sizes) and luminance SSIM, beside the baselines "the content itself" and colour
histogram matching; with --workdir, the trained feed-forward network too.
Speed: optimisation iterations/s at each size, artjax (fp32, bf16) against the PyTorch peer of
the same network and losses (benchmarks/torch_style_peer.py), repeats interleaved with the order
alternating, the fp32 matmul peak measured between repeats; feed-forward images/s; XLA's peak
memory of one iteration at 1024 px.

  python benchmarks/style.py [--quality] [--speed] [--workdir=runs/style] [--sizes=256,512]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from artjax import stylize  # noqa: E402
from artjax.image import io, metrics, style  # noqa: E402
from artjax.image.networks import feature_network  # noqa: E402

PAIRS = (("astronaut", "brick"), ("chelsea", "gravel"), ("coffee", "hubble_deep_field"))


def _write_samples(d):
  from PIL import Image
  from skimage import data
  for name in {n for p in PAIRS for n in p}:
    Image.fromarray(getattr(data, name)()).save(os.path.join(d, f"{name}.png"))


def quality(size, workdir, out_dir):
  rows = []
  with tempfile.TemporaryDirectory() as d:
    _write_samples(d)
    for c_name, s_name in PAIRS:
      cpath, spath = os.path.join(d, f"{c_name}.png"), os.path.join(d, f"{s_name}.png")
      content = io.resize(io.read_image(cpath), size)
      style_im = io.resize(io.read_image(spath), size)
      results = {"content image": content, "histogram matching": metrics.histogram_matched(content, style_im)}
      for feats in ("random", "random_vgg"):
        out = os.path.join(out_dir, f"{c_name}_x_{s_name}_{feats}.png")
        t = time.perf_counter()
        image, _ = stylize.run(stylize.Request(content=cpath, styles=(spath,), out=out, size=size,
                                               features=feats, verbose=False))
        results[f"stylize --features={feats}"] = (image, time.perf_counter() - t)
      if workdir:
        out = os.path.join(out_dir, f"{c_name}_x_{s_name}_network.png")
        t = time.perf_counter()
        image = stylize.run_network(workdir, cpath, out, size=size)
        results["feed-forward network"] = (image, time.perf_counter() - t)
      for method, r in results.items():
        image, secs = r if isinstance(r, tuple) else (r, 0.0)
        ref = io.resize_to(content, image.shape[:2])
        rows.append({"content": c_name, "style": s_name, "method": method, "seconds": round(secs, 1),
                     "heldout_style_distance": metrics.style_distance(image, style_im),
                     "content_ssim": metrics.content_ssim(image, ref)})
        print(json.dumps(rows[-1]), flush=True)
  return rows


def _problem(net, params, size, steps, dtype):
  from skimage import data
  c = io.resize_to(io.from_array(data.chelsea()), (size, size))
  s = io.resize_to(io.from_array(data.gravel()), (size, size))
  settings = style.Settings(steps=(steps,))
  fn = jax.jit(lambda p, c_, s_: style.stylize(net, p, settings, [c_], [[s_]], jnp.ones(1), None, None)[1])
  args = (jax.tree.map(jnp.asarray, params), jnp.asarray(c)[None], jnp.asarray(s)[None])
  compiled = fn.lower(*args).compile()
  return compiled, args, c, s


def _timed(f, *args):
  t = time.perf_counter()
  jax.block_until_ready(f(*args))
  return time.perf_counter() - t


def measure_peak():
  """fp32 matmul FLOP/s: a square product and the feature bank's own shape, best of 3."""
  best = 0.0
  for m, k, n in ((2048, 2048, 2048), (65536, 147, 128)):
    a = jnp.ones((m, k), jnp.float32)
    b = jnp.ones((k, n), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    f(a, b).block_until_ready()
    best = max(best, max(2 * m * k * n / _timed(f, a, b) for _ in range(3)))
  return best


def speed(sizes, iters, repeats, torch_threads):
  import torch
  import torch_style_peer as peer
  torch.set_num_threads(torch_threads)
  rows = []
  net32, params = feature_network("random", 0)
  net16, _ = feature_network("random", 0, dtype="bf16")
  for size in sizes:
    contenders = {}
    for name, net in (("artjax fp32", net32), ("artjax bf16", net16)):
      compiled, args, c, s = _problem(net, params, size, iters, net.dtype)
      flops, mem = common.cost(compiled)
      contenders[name] = (lambda compiled=compiled, args=args: _timed(compiled, *args), flops / iters)
    feats = peer.Features(net32.outputs, params, net32.content)
    tp = peer.Stylizer(feats, peer.to_torch(c), peer.to_torch(s))
    tp.step(1)

    def torch_run(tp=tp):
      t = time.perf_counter()
      tp.step(iters)
      return time.perf_counter() - t
    contenders["PyTorch eager fp32"] = (torch_run, contenders["artjax fp32"][1])
    times = {k: [] for k in contenders}
    peaks = []
    for r in range(repeats):
      order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
      for k in order:
        times[k].append(contenders[k][0]() / iters)
      peaks.append(measure_peak())
    peak = max(peaks)
    for k, ts in times.items():
      med = float(np.median(ts))
      frac = contenders[k][1] / med / peak
      rows.append({"size": size, "contender": k, "it_per_s": 1 / med, "min_s": min(ts), "max_s": max(ts),
                   "flops_per_it": contenders[k][1], "fraction_of_fp32_peak": round(frac, 3),
                   "peak_gflops": peak / 1e9})
      print(json.dumps(rows[-1]), flush=True)
    base = next(r for r in rows if r["size"] == size and r["contender"] == "PyTorch eager fp32")
    for r in rows:
      if r["size"] == size:
        r["ratio_vs_torch"] = round(r["it_per_s"] / base["it_per_s"], 2)
  return rows


def feedforward(sizes, repeats, torch_threads, width=16, blocks=3):
  import torch
  from flax import nnx
  import torch_style_peer as peer
  from artjax.models.transform import TransformNet
  torch.set_num_threads(torch_threads)
  model = TransformNet(width, blocks, rngs=nnx.Rngs(0))
  graphdef, state = nnx.split(model)
  fwd = jax.jit(lambda st, x: nnx.merge(graphdef, st)(x, matmul=False))
  tnet = peer.TransformNet(width, blocks).eval()
  rows = []
  for size in sizes:
    x = jnp.asarray(np.random.default_rng(0).random((1, size, size, 3), np.float32))
    xt = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())
    fwd(state, x).block_until_ready()
    with torch.no_grad():
      tnet(xt)
    ta, tt = [], []
    for r in range(repeats):
      ta.append(_timed(fwd, state, x))
      with torch.no_grad():
        t = time.perf_counter()
        tnet(xt)
        tt.append(time.perf_counter() - t)
    rows.append({"size": size, "artjax_images_per_s": 1 / np.median(ta),
                 "torch_images_per_s": 1 / np.median(tt), "ratio": float(np.median(tt) / np.median(ta))})
    print(json.dumps(rows[-1]), flush=True)
  return rows


def memory_1024():
  net, params = feature_network("random", 0)
  compiled, *_ = _problem(net, params, 1024, 1, "fp32")
  return {"size": 1024, "xla_peak_bytes": common.cost(compiled)[1],
          "estimate_bytes": stylize.estimate_bytes(net, (1024, 1024))}


def table(result):
  lines = []
  if result.get("quality"):
    lines += ["| content x style | method | held-out style distance (lower = closer) | content SSIM | seconds |",
              "|---|---|---|---|---|"]
    for r in result["quality"]:
      lines.append(f"| {r['content']} x {r['style']} | {r['method']} | {r['heldout_style_distance']:.3f} | "
                   f"{r['content_ssim']:.3f} | {r['seconds'] or ''} |")
  if result.get("speed"):
    lines += ["", "| size | contender | it/s (median) | fraction of fp32 peak | vs PyTorch |", "|---|---|---|---|---|"]
    for r in result["speed"]:
      lines.append(f"| {r['size']} | {r['contender']} | {r['it_per_s']:.2f} | {r['fraction_of_fp32_peak']:.2f} | "
                   f"{r['ratio_vs_torch']:.2f}x |")
  if result.get("feedforward"):
    lines += ["", "| size | artjax images/s | PyTorch images/s | ratio |", "|---|---|---|---|"]
    for r in result["feedforward"]:
      lines.append(f"| {r['size']} | {r['artjax_images_per_s']:.2f} | {r['torch_images_per_s']:.2f} | {r['ratio']:.2f}x |")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("--quality", action="store_true")
  p.add_argument("--speed", action="store_true")
  p.add_argument("--workdir", default="")
  p.add_argument("--size", type=int, default=256)
  p.add_argument("--sizes", default="256,512")
  p.add_argument("--iters", type=int, default=10)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--threads", type=int, default=os.cpu_count())
  args = p.parse_args(argv)
  both = not args.quality and not args.speed
  result = {"machine": common.machine(), "threads": {"torch": args.threads, "xla": os.cpu_count()},
            "args": vars(args)}
  out_dir = os.path.join(common.RESULTS, "style")
  os.makedirs(out_dir, exist_ok=True)
  if args.quality or both:
    result["quality"] = quality(args.size, args.workdir, out_dir)
  if args.speed or both:
    sizes = [int(s) for s in args.sizes.split(",")]
    result["speed"] = speed(sizes, args.iters, args.repeats, args.threads)
    result["feedforward"] = feedforward(sizes, args.repeats, args.threads)
    result["memory"] = memory_1024()
  common.save("style", result)
  print(table(result))


if __name__ == "__main__":
  main()
