"""Music Transformer speed: training tokens/s vs a PyTorch peer, and sampling with the KV
cache vs recomputing the whole prefix.

  python benchmarks/music_throughput.py [--config=configs/music.py] [--batch=32]
      [--repeats=5] [--sample-tokens=512] [--sample-batch=8] [--no-torch]

Training: artjax's fused, jitted step (the loop's own `compile_multi_step`) and the PyTorch
eager peer (benchmarks/torch_music_peer.py, same model, loss, optimizer and batches) run
interleaved A B A B ...; tokens/s = batch x (window + prefix) / step time; the ratio is the
median of the pairwise ratios. Sampling: `sample_cached` vs `sample_recompute` (the same
sampler without the cache), same prompt, same draws, --sample-tokens new tokens.
Results: stdout and benchmarks/results/music_throughput-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from artjax import parallel  # noqa: E402
from artjax.music import sampling  # noqa: E402
from artjax.tasks import build_task  # noqa: E402
from artjax.train import compile_multi_step  # noqa: E402
from throughput import load_config  # noqa: E402


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", default="configs/music.py")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--steps-per-dispatch", type=int, default=10)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--sample-tokens", type=int, default=512)
  p.add_argument("--sample-batch", type=int, default=8)
  p.add_argument("--no-torch", action="store_true")
  p.add_argument("--set", action="append", default=[],
                 help="config override, e.g. --set model.num_heads=2 (repeatable)")
  p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
  args = p.parse_args(argv)

  config = load_config(args.config)
  config.train.update(batch_size=args.batch, steps_per_dispatch=args.steps_per_dispatch, eval_every=0)
  for item in args.set:
    key, _, value = item.partition("=")
    *path, leaf = key.split(".")
    node = config
    for part in path:
      node = node[part]
    node[leaf] = type(node[leaf])(value)
  task = build_task(config)
  mesh = parallel.make_mesh(0)
  host = task.device_data()
  data = parallel.place_data(host, mesh)
  state = jax.jit(task.init_state, static_argnums=0)(config.seed)
  k = args.steps_per_dispatch
  compiled, compile_s = compile_multi_step(task.train_step, k, state, data, mesh)
  tokens_per_step = args.batch * (config.data.window + task.prefix_len)

  def run_jax():
    nonlocal state
    t = time.perf_counter()
    state, m = compiled(state, data)
    jax.block_until_ready(m)
    return time.perf_counter() - t
  run_jax()
  peer = None
  if not args.no_torch:
    from torch_music_peer import TorchMusicLM
    peer = TorchMusicLM(host["train"], config)
    peer.run(3)
  jt, tt = [], []
  for _ in range(args.repeats):
    jt.append(run_jax())
    if peer:
      tt.append(peer.run(k))
  jtok = [k * tokens_per_step / t for t in jt]
  rec = {"name": "music_transformer", "num_heads": config.model.num_heads, "config": args.config, "batch": args.batch,
         "window": config.data.window, "params": task.num_params, "dtype": config.train.dtype,
         "devices": jax.device_count(), "device_kind": jax.devices()[0].device_kind,
         "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
         "compile_s": compile_s, "tokens_per_step": tokens_per_step,
         "train_tokens_per_s": statistics.median(jtok), "train_tokens_per_s_min": min(jtok),
         "train_tokens_per_s_max": max(jtok)}
  line = (f"train: artjax {rec['train_tokens_per_s']:,.0f} tokens/s "
          f"[{min(jtok):,.0f}-{max(jtok):,.0f}] (compile {compile_s:.1f}s)")
  if peer:
    import torch
    ttok = [k * tokens_per_step / t for t in tt]
    ratios = [a / b for a, b in zip(jtok, ttok)]
    rec.update(torch_version=torch.__version__, torch_train_tokens_per_s=statistics.median(ttok),
               ratio_vs_torch=statistics.median(ratios), ratios_pairwise=[round(r, 3) for r in ratios])
    line += f"; torch {rec['torch_train_tokens_per_s']:,.0f} tokens/s; ratio {rec['ratio_vs_torch']:.2f} {rec['ratios_pairwise']}"
  print(line, flush=True)

  rec["overrides"] = args.set
  if args.sample_tokens > 0:
    sample_speed(rec, task, state, args)
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, f"music_throughput-{time.strftime('%Y%m%d-%H%M%S')}.json")
  with open(path, "w") as f:
    json.dump(rec, f, indent=2)
  print(f"wrote {path}")
  return rec


def sample_speed(rec, task, state, args):
  """Sampling: KV cache vs full recomputation (same prompt, same draws)."""
  model = task.model(task.model_params(state)[0])
  prompt, _ = task.prompt(args.sample_batch)
  n = args.sample_tokens
  fns = {"cached": jax.jit(lambda key: sampling.sample_cached(model, prompt, n, key, top_p=0.95)),
         "recompute": jax.jit(lambda key: sampling.sample_recompute(model, prompt, n, key, top_p=0.95))}
  times = {name: [] for name in fns}
  for name, fn in fns.items():
    fn(jax.random.key(0)).block_until_ready()
  for r in range(3):
    for name, fn in fns.items():
      t = time.perf_counter()
      fn(jax.random.key(r + 1)).block_until_ready()
      times[name].append(time.perf_counter() - t)
  same = bool(np.array_equal(fns["cached"](jax.random.key(9)), fns["recompute"](jax.random.key(9))))
  for name in fns:
    rec[f"sample_{name}_tokens_per_s"] = args.sample_batch * n / statistics.median(times[name])
  rec.update(sample_tokens=n, sample_batch=args.sample_batch,
             kv_cache_speedup=statistics.median(times["recompute"]) / statistics.median(times["cached"]),
             cached_equals_recompute=same)
  print(f"sample {n} tokens x {args.sample_batch}: cached {rec['sample_cached_tokens_per_s']:,.0f} tokens/s, "
        f"recompute {rec['sample_recompute_tokens_per_s']:,.0f} tokens/s: {rec['kv_cache_speedup']:.1f}x "
        f"(identical tokens: {same})", flush=True)


if __name__ == "__main__":
  main()
