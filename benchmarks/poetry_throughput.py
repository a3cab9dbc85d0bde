"""Poetry Transformer speed: training tokens/s against the PyTorch peer (the music peer with
this vocabulary, benchmarks/torch_poetry_peer.py; same model, loss, optimizer, batches),
run interleaved A B A B ..., ratio = median of the pairwise ratios; and constrained
KV-cache sampling in poems/s (wujue and qilu, batch --sample-batch).

  python benchmarks/poetry_throughput.py [--config=configs/poetry.py] [--repeats=5]
      [--sample-batch=16] [--no-torch] [--config.x=y ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import jax

from benchmarks import common
from artjax.poetry import text


def sample_speed(task, state, batch: int) -> dict:
  out = {}
  for form in ("wujue", "qilu"):
    task.config.sample.form = form
    fn = jax.jit(lambda st, seed: task.sample(st, seed, batch)["tokens"])
    fn(state, 0).block_until_ready()
    times = []
    for r in range(3):
      t = time.perf_counter()
      fn(state, r + 1).block_until_ready()
      times.append(time.perf_counter() - t)
    out[f"{form}_poems_per_s"] = batch / statistics.median(times)
  return out


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("--config", default="configs/poetry.py")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--steps-per-dispatch", type=int, default=10)
  p.add_argument("--sample-batch", type=int, default=16)
  p.add_argument("--no-torch", action="store_true")
  args, config = common.parse(p, argv)
  config.train.update(steps_per_dispatch=args.steps_per_dispatch, eval_every=0)
  config.mesh.num_devices = 0
  prep = common.Prepared(config)
  task, k = prep.task, prep.k
  tokens = prep.host_data["train"]["tokens"]
  # tokens a step trains on: characters and EOS (the scored positions), about 40 per poem
  scored = float((tokens[:, text.PREFIX:] != 0).sum(1).mean())
  per_step = config.train.batch_size * scored
  prep.run(1)
  peer = None
  if not args.no_torch:
    import torch
    from benchmarks.peers.torch_poetry_peer import TorchPoetryLM
    torch.set_num_threads(os.cpu_count())
    peer = TorchPoetryLM(tokens, task.vocab_size, config)
    peer.run(2)
  jt, tt = [], []
  for _ in range(args.repeats):
    jt.append(prep.run(1))
    if peer:
      tt.append(peer.run(k))
  jtok = [k * per_step / t for t in jt]
  rec = {"config": args.config, "dtype": config.train.dtype, "batch": config.train.batch_size,
         "params": task.num_params, "vocab": task.vocab_size, "scored_tokens_per_poem": scored,
         "machine": common.machine(), "threads": {"torch": sys.modules["torch"].get_num_threads() if peer else None},
         "train_tokens_per_s": statistics.median(jtok), "train_tokens_per_s_all": jtok}
  if peer:
    ttok = [k * per_step / t for t in tt]
    rec.update(torch_version=sys.modules["torch"].__version__, torch_train_tokens_per_s=statistics.median(ttok),
               ratio_vs_torch=statistics.median([a / b for a, b in zip(jtok, ttok)]))
  rec.update(sample_batch=args.sample_batch, **sample_speed(task, prep.state, args.sample_batch))
  print(json.dumps(rec, indent=1))
  common.save("poetry_throughput", rec)


if __name__ == "__main__":
  main()
