"""Why major/minor control is weak: does a mode-conditional Music Transformer use its
control token, and does a minor opening stay minor?

  python benchmarks/music_mode_drift.py --cond=WORKDIR [--num=32] [--out=benchmarks/results]

1. Test NLL per frame of the major and of the minor test chorales scored with the true
   mode token, the opposite one and none (`music_report.mode_token_nll`).
2. --num samples asked for each mode and primed with that mode's tonic triad (D minor
   D3 A3 F4 D5 / D major D3 A3 F#4 D5): the share music21's key analysis calls minor over
   their first 4, 8, 16, 32 and 64 frames, beside the same for the first frames of the
   held-out chorales labelled with that mode.
3. Key-profile steering (`sample.key_guidance` = lambda, a random tonic per sample): the
   share called minor of --num 64-frame samples asked major / minor, and what the steering
   costs: the (unsteered) model's own NLL per frame of the samples.
Writes OUT/music_mode_drift.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import time


import jax
import numpy as np

from benchmarks import common
from artjax.music import data as data_lib
from artjax.music import metrics as mus
from artjax.tasks.music_report import mode_token_nll
from artjax.music import encoding as enc
from artjax.tasks import open_run as load_state

# keys are MIDI - 21: D3 = 29, A3 = 36, F4 = 44, F#4 = 45, D5 = 53
TRIADS = {"major": [29, 36, 45, 53], "minor": [29, 36, 44, 53]}
LENGTHS = (4, 8, 16, 32, 64)
WEIGHTS = (0.0, 1.0, 2.0)


def samples_nll(task, state, tokens, modes) -> float:
  """The model's NLL per frame of its own samples (without any steering)."""
  from artjax.music.encoding import eval_windows
  rows = [t[:int(np.argmax(t == enc.PAD))] if np.any(t == enc.PAD) else t for t in tokens]
  ins, tgts, score, frames = eval_windows(rows, [task._prefix(m) for m in modes],
                                          task.config.data.window)
  return float(jax.jit(task.nll_of_windows)(state, ins, tgts, score)) / frames


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--cond", required=True, help="workdir of a mode-conditional music model")
  p.add_argument("--num", type=int, default=32)
  p.add_argument("--out", default=common.RESULTS)
  args = p.parse_args(argv)
  t0 = time.perf_counter()
  task, state = load_state(args.cond)
  if not task.conditional:
    raise SystemExit(f"error: {args.cond} holds an unconditional model; give a mode-conditional one")
  token = mode_token_nll(task, state)
  ds = data_lib.load_chorales()
  drift = {}
  for i, mode in enumerate(("major", "minor")):
    task.config.sample.update(mode=mode, num_frames=max(LENGTHS))
    opening = np.asarray(TRIADS[mode] + [enc.EOF], np.int32)
    s = jax.device_get(task.sample(state, 1234, args.num, opening))
    rolls = [enc.tokens_to_roll(t) for t in s["tokens"]]
    real = [r for r, m in zip(ds.rolls("test"), ds.modes("test")) if m == i]
    drift[mode] = {str(n): {"samples": mus.minor_share([r[:n] for r in rolls]),
                            "held_out": mus.minor_share([r[:n] for r in real if len(r) >= n])}
                   for n in LENGTHS}
  steer = {}
  for w in WEIGHTS:
    for mode in ("major", "minor"):
      task.config.sample.update(mode=mode, key_guidance=w, tonic=-1)
      s = jax.device_get(task.sample(state, 1234, args.num))
      rolls = [enc.tokens_to_roll(t) for t in s["tokens"]]
      steer[f"{w:g}/{mode}"] = {"minor_share": mus.minor_share(rolls),
                                "sample_nll_per_frame": samples_nll(task, state, s["tokens"], s["modes"])}
  result = {"workdir": os.path.abspath(args.cond), "step": int(state["step"]), "num": args.num,
            "mode_token_nll": token, "minor_share_by_frames": drift, "key_guidance": steer,
            "key_profiles": {m: np.round(row, 4).tolist()
                             for m, row in zip(("major", "minor"), task.key_profiles())},
            "wall_s": round(time.perf_counter() - t0, 1)}
  lines = ["Test NLL per frame with the true / opposite / no mode token:", ""]
  lines += [f"- {k} chorales ({v['chorales']}): {v['true']:.3f} / {v['opposite']:.3f} / {v['none']:.3f}"
            for k, v in token.items()]
  lines += ["", "Share called minor over the first N frames (samples primed with the tonic triad of "
            "the requested mode vs held-out chorales of that mode):", "",
            "| requested | " + " | ".join(f"N = {n}" for n in LENGTHS) + " |",
            "|---|" + "---|" * len(LENGTHS)]
  for mode, row in drift.items():
    lines.append(f"| {mode} | " + " | ".join(
        f"{row[str(n)]['samples']:.2f} (Bach {row[str(n)]['held_out']:.2f})" for n in LENGTHS) + " |")
  prof = task.key_profiles()
  lines += ["", "Pitch-class profiles of the training chorales (share of sounding notes on the minor / "
            f"major third above the tonic): major {prof[0][3]:.3f} / {prof[0][4]:.3f}, "
            f"minor {prof[1][3]:.3f} / {prof[1][4]:.3f}."]
  lines += ["", "Key-profile steering (`sample.key_guidance`): share called minor, asked major / "
            "minor, and the model's own NLL per frame of those samples:", "",
            "| key_guidance | minor share, asked major | asked minor | sample NLL/frame (major / minor) |",
            "|---|---|---|---|"]
  for w in WEIGHTS:
    a, b = steer[f"{w:g}/major"], steer[f"{w:g}/minor"]
    lines.append(f"| {w:g} | {a['minor_share']:.2f} | {b['minor_share']:.2f} | "
                 f"{a['sample_nll_per_frame']:.2f} / {b['sample_nll_per_frame']:.2f} |")
  table = "\n".join(lines)
  common.save("music_mode_drift", dict(result, table=table))
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "music_mode_drift.json"), "w") as f:   # the latest
    json.dump(common.recorded(result), f, indent=2)
  with open(os.path.join(args.out, "music_mode_drift.md"), "w") as f:
    f.write(table + "\n")
  print(table)
  return result


if __name__ == "__main__":
  main()
