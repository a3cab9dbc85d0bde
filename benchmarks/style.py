"""Style transfer, quality and speed, in one run (JSON in benchmarks/results, a markdown table
on stdout for docs/style.md).

Quality: `run.py stylize` defaults on content/style pairs of scikit-image photos at 256 px, for
each feature network, scored by a HELD-OUT random network (artjax.image.metrics: another seed,
other filter sizes) and luminance SSIM, beside the baselines "the content itself" and colour
histogram matching; with --workdir, the trained feed-forward network too.
Speed: optimisation iterations/s at each size, artjax (fp32, bf16) against the PyTorch peers of
the same network and losses (benchmarks/torch_style_peer.py: eager, eager channels-last,
torch.compile; ratios against the fastest), repeats interleaved in a rotated order, the fp32
matmul peak measured between repeats; feed-forward images/s against the same three peers; XLA's
peak memory of one iteration at 1024 px.

  python benchmarks/style.py [--quality] [--speed] [--workdir=runs/style] [--sizes=256,512]
      [--no-torch-compile] [--feedforward: only the feed-forward speed]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from artjax.commands import stylize
from artjax.image import io, metrics, style
from artjax.image.networks import feature_network

PAIRS = (("astronaut", "brick"), ("chelsea", "gravel"), ("coffee", "hubble_deep_field"))


def _write_samples(d):
  from PIL import Image
  from skimage import data
  for name in {n for p in PAIRS for n in p}:
    Image.fromarray(getattr(data, name)()).save(os.path.join(d, f"{name}.png"))


def quality(size, workdir, out_dir, features=("random", "random_vgg", "lite0")):
  rows = []
  with tempfile.TemporaryDirectory() as d:
    _write_samples(d)
    for c_name, s_name in PAIRS:
      cpath, spath = os.path.join(d, f"{c_name}.png"), os.path.join(d, f"{s_name}.png")
      content = io.resize(io.read_image(cpath), size)
      style_im = io.resize(io.read_image(spath), size)
      results = {"content image": content, "histogram matching": metrics.histogram_matched(content, style_im)}
      for feats in features:
        out = os.path.join(out_dir, f"{c_name}_x_{s_name}_{feats}.png")
        t = time.perf_counter()
        image, _ = stylize.stylize(stylize.Request(content=cpath, styles=(spath,), out=out, size=size,
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


PEERS = (("PyTorch eager", False, False), ("PyTorch eager channels-last", False, True),
         ("torch.compile", True, False))


def _torch_contenders(net, params, c, s, iters, no_compile):
  """name -> a callable timing `iters` optimisation steps of that PyTorch peer (warmed up:
  compiled) -- eager, eager channels-last and torch.compile; the row's peer is the fastest."""
  from benchmarks.peers import torch_style_peer as peer
  out = {}
  for name, compiled, channels_last in PEERS:
    if compiled and no_compile:
      continue
    tp = peer.Stylizer(peer.Features(net.outputs, params, net.content, channels_last=channels_last),
                       peer.to_torch(c), peer.to_torch(s), compile=compiled)
    tp.step(2)

    def run(tp=tp):
      t = time.perf_counter()
      tp.step(iters)
      return time.perf_counter() - t
    out[name] = run
  return out


def speed(sizes, iters, repeats, torch_threads, no_compile=False):
  """Per size: every contender once per repeat in a rotated order (A B C D, B C D A, ...), the
  fp32 matmul peak measured again after each repeat over a square product and the filter bank's
  own patch x filter shape (the peak is the max seen; a fraction above 1 is an error)."""
  import torch
  torch.set_num_threads(torch_threads)
  rows = []
  net32, params = feature_network("random", 0)
  net16, _ = feature_network("random", 0, dtype="bf16")
  for size in sizes:
    contenders, flops = {}, {}
    for name, net in (("artjax fp32", net32), ("artjax bf16", net16)):
      compiled, args, c, s = _problem(net, params, size, iters, net.dtype)
      flops[name] = common.cost(compiled)[0] / iters
      contenders[name] = lambda compiled=compiled, args=args: _timed(compiled, *args)
    peers = _torch_contenders(net32, params, c, s, iters, no_compile)
    contenders.update(peers)
    times, peak = {k: [] for k in contenders}, 0.0
    shapes = ((2048, 2048, 2048), (size * size, 147, 128))
    for r in range(repeats):
      names = list(contenders)
      for k in names[r % len(names):] + names[:r % len(names)]:
        times[k].append(contenders[k]() / iters)
      peak = max(peak, common.matmul_peak(jnp.float32, shapes, repeats=3))
    for k, ts in times.items():
      med = float(np.median(ts))
      fl = flops.get(k, flops["artjax fp32"])       # a PyTorch peer does artjax fp32's work
      frac = fl / med / peak
      if frac > 1:
        raise SystemExit(f"error: {k} at {size} px ran at {frac:.2f}x the measured peak: the peak "
                         "measurement is wrong; nothing written")
      rows.append({"size": size, "contender": k, "it_per_s": 1 / med, "min_s": min(ts), "max_s": max(ts),
                   "flops_per_it": fl, "fraction_of_fp32_peak": round(frac, 3),
                   "peak_gflops": peak / 1e9})
      print(json.dumps(rows[-1]), flush=True)
    best = max((r for r in rows if r["size"] == size and r["contender"] in peers), key=lambda r: r["it_per_s"])
    for r in rows:
      if r["size"] == size:
        r["ratio_vs_torch"] = round(r["it_per_s"] / best["it_per_s"], 2)
        r["torch_peer"] = best["contender"]
  return rows


def feedforward(sizes, repeats, torch_threads, width=16, blocks=3, no_compile=False):
  """One forward pass of the transformation network: artjax against the fastest of PyTorch
  eager, eager channels-last and torch.compile (rotated order)."""
  import torch
  from flax import nnx
  from benchmarks.peers import torch_style_peer as peer
  from artjax.image.models.transform import TransformNet
  torch.set_num_threads(torch_threads)
  model = TransformNet(width, blocks, rngs=nnx.Rngs(0))
  graphdef, state = nnx.split(model)
  fwd = jax.jit(lambda st, x: nnx.merge(graphdef, st)(x, blocked=True))
  tnet = peer.TransformNet(width, blocks).eval()
  rows = []
  for size in sizes:
    x = jnp.asarray(np.random.default_rng(0).random((1, size, size, 3), np.float32))
    xt = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())
    fwd(state, x).block_until_ready()
    fns = {"artjax": lambda: _timed(fwd, state, x)}
    for name, compiled, channels_last in PEERS:
      if compiled and no_compile:
        continue
      net = copy.deepcopy(tnet)                   # the same weights in every variant
      net = torch.compile(net) if compiled else (net.to(memory_format=torch.channels_last) if channels_last else net)
      inp = xt.contiguous(memory_format=torch.channels_last) if channels_last else xt

      def run(net=net, inp=inp):
        with torch.no_grad():
          t = time.perf_counter()
          net(inp)
          return time.perf_counter() - t
      run()
      fns[name] = run
    times = {k: [] for k in fns}
    for r in range(repeats):
      names = list(fns)
      for k in names[r % len(names):] + names[:r % len(names)]:
        times[k].append(fns[k]())
    med = {k: float(np.median(v)) for k, v in times.items()}
    best = min((k for k in med if k != "artjax"), key=med.get)
    rows.append({"size": size, "artjax_images_per_s": 1 / med["artjax"], "torch_peer": best,
                 "torch_images_per_s": 1 / med[best], "ratio": med[best] / med["artjax"],
                 "torch_images_per_s_each": {k: 1 / v for k, v in med.items() if k != "artjax"}})
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
    lines += ["", "| size | contender | it/s (median) | fraction of fp32 peak | vs the fastest PyTorch |",
              "|---|---|---|---|---|"]
    for r in result["speed"]:
      lines.append(f"| {r['size']} | {r['contender']} | {r['it_per_s']:.2f} | {r['fraction_of_fp32_peak']:.2f} | "
                   f"{r['ratio_vs_torch']:.2f}x |")
  if result.get("feedforward"):
    lines += ["", "| size | artjax images/s | fastest PyTorch images/s (peer) | ratio |", "|---|---|---|---|"]
    for r in result["feedforward"]:
      lines.append(f"| {r['size']} | {r['artjax_images_per_s']:.2f} | {r['torch_images_per_s']:.2f} "
                   f"({r['torch_peer']}) | {r['ratio']:.2f}x |")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("--quality", action="store_true")
  p.add_argument("--speed", action="store_true")
  p.add_argument("--feedforward", action="store_true", help="only the feed-forward speed")
  p.add_argument("--workdir", default="")
  p.add_argument("--features", default="random,random_vgg,lite0",
                 help="--quality: the optimisation's feature networks to compare")
  p.add_argument("--size", type=int, default=256)
  p.add_argument("--sizes", default="256,512")
  p.add_argument("--iters", type=int, default=10)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--threads", type=int, default=os.cpu_count())
  p.add_argument("--no-torch-compile", action="store_true", help="skip the torch.compile peers")
  args = p.parse_args(argv)
  both = not args.quality and not args.speed and not args.feedforward
  result = {"machine": common.machine(), "threads": {"torch": args.threads, "xla": os.cpu_count()},
            "args": vars(args)}
  out_dir = os.path.join(common.RESULTS, "style")
  os.makedirs(out_dir, exist_ok=True)
  if args.quality or both:
    result["quality"] = quality(args.size, args.workdir, out_dir, tuple(args.features.split(",")))
  sizes = [int(s) for s in args.sizes.split(",")]
  if args.speed or both:
    result["speed"] = speed(sizes, args.iters, args.repeats, args.threads, args.no_torch_compile)
  if args.speed or args.feedforward or both:
    result["feedforward"] = feedforward(sizes, args.repeats, args.threads, no_compile=args.no_torch_compile)
  if args.speed or both:
    result["memory"] = memory_1024()
  common.save("style", result)
  print(table(result))


if __name__ == "__main__":
  main()
