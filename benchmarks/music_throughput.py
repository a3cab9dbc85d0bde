"""Music Transformer speed: training tokens/s vs a PyTorch peer, and sampling with the KV
cache vs recomputing the whole prefix.

  python benchmarks/music_throughput.py [--config=configs/music.py] [--batch=32]
      [--repeats=5] [--sample-tokens=512] [--sample-batch=8] [--no-torch] [--config.x=y ...]

(`--config.train.dtype=bf16`, `--config.model.attn_block=0`, ...: run.py's own overrides.)

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
import time

import jax
import numpy as np

import common
from artjax.music import sampling


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", default="configs/music.py")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--steps-per-dispatch", type=int, default=10)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--sample-tokens", type=int, default=512)
  p.add_argument("--sample-batch", type=int, default=8)
  p.add_argument("--no-torch", action="store_true")
  p.add_argument("--out", default=common.RESULTS)
  args, config = common.parse(p, argv)
  config.train.update(batch_size=args.batch, steps_per_dispatch=args.steps_per_dispatch, eval_every=0)
  config.mesh.num_devices = 0
  prep = common.Prepared(config)
  task, host, k, compile_s = prep.task, prep.host_data, prep.k, prep.compile_s
  tokens_per_step = args.batch * (config.data.window + task.prefix_len)

  def run_jax():
    return prep.run(1)
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

  rec["overrides"] = [a for a in (argv if argv is not None else __import__("sys").argv[1:])
                      if a.startswith("--config.")]
  if args.sample_tokens > 0:
    sample_speed(rec, task, prep.state, args)
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, f"music_throughput-{common.stamp()}.json")
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
