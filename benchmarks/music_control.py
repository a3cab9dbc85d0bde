"""Emotion control, measured: major vs minor by music21's key analysis of samples.

  python benchmarks/music_control.py [--workdir=runs/music_control] [--cond=WORKDIR]
      [--pretrain-steps=1500] [--finetune-steps=400] [--num=32]

1. An unconditional Music Transformer is pretrained on all training chorales
   (configs/music.py:uncond), or reused when its workdir already holds the steps.
2. It is fine-tuned on the minor-mode training chorales only, with prefix-tuning
   (configs/music.py:prefix_minor) and with LoRA (configs/music.py:lora_minor).
3. --num samples from each (same seeds) are analysed by music21: the share called minor,
   beside the trainable-parameter share of each method and the held-out chorales' share.
4. With --cond=WORKDIR (a mode-conditional model, configs/music.py), its samples asked for
   major and for minor are analysed the same way (the control-token route).
Writes WORKDIR/music_control.json and .md.
"""

from __future__ import annotations

import argparse
import os
import time


import jax

from benchmarks import common
from artjax.music import data as data_lib
from artjax.music import metrics as mus
from artjax.music import encoding as enc
from artjax.tasks import open_run as load_state
from artjax.tasks.training import train
from configs.music import get_config


def minor_share_of(workdir, num, mode=None, guidance=None):
  task, state = load_state(workdir)
  if mode is not None:
    task.config.sample.mode = mode
  if guidance is not None:
    task.config.sample.guidance = guidance
  s = jax.device_get(jax.jit(task.sample, static_argnums=2)(state, 1234, num))
  rolls = [enc.tokens_to_roll(t) for t in s["tokens"]]
  return mus.minor_share(rolls), task, state


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--workdir", default=os.path.join(common.ROOT, "runs", "music_control"))
  p.add_argument("--cond", default="")
  p.add_argument("--guidance", default="1,2,3", help="guidance scales for the --cond model")
  p.add_argument("--pretrain-steps", type=int, default=1500)
  p.add_argument("--finetune-steps", type=int, default=400)
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--num", type=int, default=32)
  args = p.parse_args(argv)
  t0 = time.perf_counter()
  base = os.path.join(args.workdir, "uncond")
  c = get_config("uncond")
  c.train.update(steps=args.pretrain_steps, batch_size=args.batch, eval_every=500)
  train(c, base)
  rows = []
  share, task, state = minor_share_of(base, args.num)
  rows.append({"model": "unconditional, pretrained on all chorales", "method": "-",
               "trainable_share": 1.0, "minor_share": share})
  total = task.num_params
  for method in ("prefix", "lora"):
    wd = os.path.join(args.workdir, f"{method}_minor")
    c = get_config(f"{method}_minor")
    c.finetune.init_from = base
    c.train.update(steps=args.finetune_steps, batch_size=args.batch, eval_every=100,
                   ckpt_every=args.finetune_steps)
    t = time.perf_counter()
    summary = train(c, wd)
    share, task, _ = minor_share_of(wd, args.num)
    rows.append({"model": f"fine-tuned on minor chorales ({len(task.split_tokens('train')[0])})",
                 "method": method, "trainable_share": task.trainable_count() / total,
                 "trainable_params": task.trainable_count(), "minor_share": share,
                 "val_nll_per_frame_minor": summary.get("best", {}).get("value"),
                 "wall_s": round(time.perf_counter() - t, 1)})
  ch = data_lib.load_chorales()
  held_out = mus.minor_share(ch.rolls("test"))
  cond = {}
  if args.cond:
    for w in [float(x) for x in args.guidance.split(",")]:
      for mode in ("major", "minor"):
        cond[f"{mode}, guidance {w:g}"] = minor_share_of(args.cond, args.num, mode, w)[0]
  result = {"rows": rows, "held_out_minor_share": held_out,
            "held_out_minor_share_by_label": mus.minor_share(
                [r for r, m in zip(ch.rolls("test"), ch.modes("test")) if m == 1]),
            "conditional": cond, "num_samples": args.num, "total_params": total,
            "wall_s": round(time.perf_counter() - t0, 1)}
  lines = ["| model | method | trainable params | minor share (music21) |", "|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['model']} | {r['method']} | {r['trainable_share'] * 100:.2f}% | {r['minor_share']:.2f} |")
  for mode, v in cond.items():
    lines.append(f"| mode-conditional, asked for {mode} | control token | - | {v:.2f} |")
  lines.append(f"| held-out test chorales | - | - | {held_out:.2f} |")
  table = "\n".join(lines)
  common.save("music_control", dict(result, table=table))
  print(table)
  print(f"total {result['wall_s']} s; {total:,} parameters")
  return result


if __name__ == "__main__":
  main()
