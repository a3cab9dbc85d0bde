"""Music Transformer speed: training tokens/s vs a PyTorch peer, and sampling with the KV
cache vs recomputing the whole prefix.

  python benchmarks/music_throughput.py [--config=configs/music.py] [--batch=32]
      [--repeats=5] [--sample-tokens=512] [--sample-batch=8] [--sample-repeats=7] [--no-torch]
      [--meshes="data=-1;fsdp=-1;fsdp=2,tensor=-1"] [--config.x=y ...]

(`--config.train.dtype=bf16`, `--config.model.attn_block=0`, ...: run.py's own overrides.)

Training: artjax's fused, jitted step (the loop's own `compile_multi_step`) and the PyTorch
eager peer (benchmarks/torch_music_peer.py, same model, loss, optimizer and batches) run
interleaved A B A B ...; tokens/s = batch x (window + prefix) / step time; the ratio is the
median of the pairwise ratios; both sides' thread counts are recorded, and the order
alternates between repeats. Sampling: `sample_cached` vs `sample_recompute` (the same sampler
without the cache) recomputing only the prefix written so far (the honest baseline) and the
whole padded buffer, same prompt, same draws, --sample-tokens new tokens.
MFU (`--meshes`, each a --config.mesh.shape): for every mesh, tokens/s, model FLOPs
utilisation = model FLOPs per step (6 x weights x tokens + the causal attention products,
rematerialisation not counted) / step time / devices / the per-device peak (the datasheet
bf16/fp32 dense peak of TPUs v4-v6e and A100/H100/H200; on CPUs the measured matmul peak,
over square and this model's own shapes), and the per-device memory of the compiled program
(arguments + temporaries + outputs).
Results: stdout and benchmarks/results/music_throughput-*.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from artjax.music import sampling


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--config", default="configs/music.py")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--steps-per-dispatch", type=int, default=10)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--sample-tokens", type=int, default=512)
  p.add_argument("--sample-batch", type=int, default=8)
  p.add_argument("--sample-repeats", type=int, default=7)
  p.add_argument("--no-torch", action="store_true")
  p.add_argument("--meshes", default="", help="';'-separated mesh shapes for the MFU table")
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
    from benchmarks.peers.torch_music_peer import TorchMusicLM
    import torch
    torch.set_num_threads(os.cpu_count())   # XLA:CPU's pool uses every core
    peer = TorchMusicLM(host["train"], config)
    peer.run(3)
  jt, tt = [], []
  for i in range(args.repeats):   # alternating order: artjax first on even repeats
    if peer and i % 2:
      tt.append(peer.run(k))
    jt.append(run_jax())
    if peer and not i % 2:
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
  rec["mfu"] = [mfu_row(config, prep, args.repeats, "")]
  for shape in (m for m in args.meshes.split(";") if m.strip()):
    c = config.copy_and_resolve_references()
    c.mesh.shape = shape.strip()
    rec["mfu"].append(mfu_row(c, common.Prepared(c), args.repeats, shape.strip()))
  if args.sample_tokens > 0:
    sample_speed(rec, task, prep.state, args)
  rec["repeats"] = args.repeats
  common.save("music_throughput", rec)
  return rec


def model_flops_per_step(config, params: int, tokens: int) -> float:
  """6 x weights x tokens (forward + backward) + causal attention: per layer 6 x T x d per
  token (QK^T and PV, forward + backward, half of the T x T products masked)."""
  m = config.model
  return 6.0 * params * tokens + 6.0 * m.num_layers * config.data.window * m.d_model * tokens


def mfu_row(config, prep, repeats: int, shape: str) -> dict:
  m, dt = config.model, config.train.dtype
  tokens = config.train.batch_size * (config.data.window + prep.task.prefix_len)
  prep.run(1)
  times = sorted(prep.run(1) / prep.k for _ in range(repeats))
  step_s = times[len(times) // 2]
  devices = prep.mesh.size
  kind = jax.devices()[0].device_kind
  peak = common.datasheet_peak(kind, dt)
  source = "datasheet"
  if peak is None:   # a CPU: what its matmuls reach now, over this model's shapes too
    rows = config.train.batch_size * config.data.window // max(1, devices)
    shapes = [(1024, 1024, 1024), (2048, 2048, 2048), (rows, m.d_model, m.d_ff),
              (rows, m.d_model, 3 * m.d_model), (rows, m.d_ff, m.d_model)]
    peak = common.matmul_peak(jnp.bfloat16 if dt == "bf16" else jnp.float32, shapes)
    source = "measured matmul peak (max over square and the model's own shapes)"
  flops = model_flops_per_step(config, prep.task.num_params, tokens)
  mem = prep.compiled.memory_analysis()
  mem_bytes = int(mem.argument_size_in_bytes + mem.temp_size_in_bytes + mem.output_size_in_bytes) if mem else None
  row = {"mesh": {k: int(v) for k, v in prep.mesh.shape.items()}, "shape": shape or config.mesh.get("shape", ""),
         "devices": devices, "device_kind": kind, "dtype": dt, "tokens_per_s": tokens / step_s,
         "step_s_median": step_s, "model_flops_per_step": flops, "peak_flops_per_device": peak,
         "peak_source": source, "mfu": flops / step_s / devices / peak,
         "memory_bytes_per_device": mem_bytes}
  print(f"mesh {row['mesh']}: {row['tokens_per_s']:,.0f} tokens/s, MFU {row['mfu']:.1%} of "
        f"{peak / 1e12:.2f} TFLOP/s per device ({source}), {mem_bytes / 2**20:.0f} MiB per device",
        flush=True)
  return row


def sample_speed(rec, task, state, args):
  """Sampling: the KV cache vs recomputing the prefix written so far (rounded up to 64
  tokens; the honest baseline) and vs recomputing the whole padded buffer; same prompt, same
  draws, `--sample-repeats` timed calls each in a rotated order."""
  model = task.model(task.model_params(state)[0])
  prompt, _ = task.prompt(args.sample_batch)
  n = args.sample_tokens
  fns = {"cached": jax.jit(lambda key: sampling.sample_cached(model, prompt, n, key, top_p=0.95)),
         "recompute_prefix": jax.jit(lambda key: sampling.sample_recompute(
             model, prompt, n, key, top_p=0.95, chunk=64)),
         "recompute_buffer": jax.jit(lambda key: sampling.sample_recompute(model, prompt, n, key, top_p=0.95))}
  times = {name: [] for name in fns}
  for fn in fns.values():
    fn(jax.random.key(0)).block_until_ready()
  names = list(fns)
  for r in range(args.sample_repeats):
    for name in names[r % len(names):] + names[:r % len(names)]:
      t = time.perf_counter()
      fns[name](jax.random.key(r + 1)).block_until_ready()
      times[name].append(time.perf_counter() - t)
  ref = np.asarray(fns["cached"](jax.random.key(9)))
  same = all(bool(np.array_equal(ref, fns[k](jax.random.key(9)))) for k in names[1:])
  for name in fns:
    rec[f"sample_{name}_tokens_per_s"] = args.sample_batch * n / statistics.median(times[name])
    rec[f"sample_{name}_seconds"] = [round(t, 4) for t in times[name]]
  med = {k: statistics.median(v) for k, v in times.items()}
  rec.update(sample_tokens=n, sample_batch=args.sample_batch, sample_repeats=args.sample_repeats,
             kv_cache_speedup=med["recompute_prefix"] / med["cached"],
             kv_cache_speedup_vs_whole_buffer=med["recompute_buffer"] / med["cached"],
             cached_equals_recompute=same)
  print(f"sample {n} tokens x {args.sample_batch} ({args.sample_repeats} repeats): cached "
        f"{rec['sample_cached_tokens_per_s']:,.0f} tokens/s; recompute the prefix "
        f"{rec['sample_recompute_prefix_tokens_per_s']:,.0f} ({rec['kv_cache_speedup']:.1f}x slower), "
        f"the whole buffer {rec['sample_recompute_buffer_tokens_per_s']:,.0f} "
        f"({rec['kv_cache_speedup_vs_whole_buffer']:.1f}x); identical tokens: {same}", flush=True)


if __name__ == "__main__":
  main()
