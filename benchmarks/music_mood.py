"""Mood through the model: does a mode-conditional Music Transformer obey its major/minor token?

  python -m benchmarks.music_mood --cond=runs/music_keynorm --uncond=runs/music_keynorm_uncond
      [--base=runs/music] [--guidance=1,2,3] [--num=64] [--seed=1234] [--best]

Trains what is missing (configs/music.py:keynorm and :keynorm_uncond, `train.steps` of the
config), then, key-profile steering off, for each guidance scale w: --num samples of
16 bars, half asked major and half minor, each judged by two independent tests of mode:
music21's key analysis (reads the pitch-class profile) and the chord-quality test
(`artjax.music.metrics.ChordModeTest`, fitted on the training chorales; it never reads the
profile). Beside them: the test NLL per frame of the conditional and the unconditional
model on the same (key-normalised) test chorales, and the conditional model's NLL with the
true / the opposite / no mode token (a model that uses the token scores the true one lowest).
--base: a model trained on chorales in their own keys (configs/music.py:default), measured
the same way (the route that ignored its token). Writes benchmarks/results/music_mood-*.json.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

from benchmarks import common
from artjax.music import data as data_lib
from artjax.music import encoding as enc
from artjax.music import metrics as mus
from artjax.tasks import open_run
from artjax.tasks.music_report import mode_token_nll, test_nll_per_frame
from artjax.tasks.training import train
from configs.music import get_config


def _ensure(workdir: str, variant: str) -> None:
  if not os.path.exists(os.path.join(workdir, "summary.json")):
    train(get_config(variant), workdir)


def obedience(workdir: str, chord: mus.ChordModeTest, guidance: float, num: int, seed: int,
              best: bool = False) -> dict:
  """Share of samples called the asked mode, by each test, asked major and asked minor."""
  task, state = open_run(workdir, best=best)
  task.config.sample.update(guidance=guidance, key_guidance=0.0, mode="alternate")
  modes = np.arange(num) % 2
  s = jax.device_get(jax.jit(task.sample, static_argnums=2)(state, seed, num))
  rolls = [enc.tokens_to_roll(t) for t in s["tokens"]]
  out = {}
  for name, minor in (("music21", lambda rs: np.asarray([mus.key_of(r)[1] == "minor" for r in rs])),
                      ("chords", chord.minor)):
    called = minor(rolls)
    out[name] = {"asked_major": float(np.mean(~called[modes == 0])),
                 "asked_minor": float(np.mean(called[modes == 1]))}
  return out


def measure(workdir: str, chord, guidances, num: int, seed: int, best: bool = False) -> dict:
  task, state = open_run(workdir, best=best)
  nll, frames = test_nll_per_frame(task, state)
  row = {"workdir": workdir, "step": int(state["step"]), "key_normalised": task.key_normalised,
         "conditional": task.conditional, "test_nll_per_frame": nll, "test_frames": frames}
  if task.conditional:
    row["mode_token_nll"] = mode_token_nll(task, state)
    row["by_guidance"] = {f"{w:g}": obedience(workdir, chord, w, num, seed, best) for w in guidances
                          if w == 1.0 or task.config.model.cond_dropout > 0}
  return row


def table(rows) -> str:
  lines = ["| model | test NLL (nats/frame) | guidance w | asked major: called major (music21 / chords) "
           "| asked minor: called minor (music21 / chords) |", "|---|---|---|---|---|"]
  for r in rows:
    name = f"{'key-normalised' if r['key_normalised'] else 'own keys'}, " + \
        ("mode token" if r["conditional"] else "unconditional")
    if not r["conditional"]:
      lines.append(f"| {name} | {r['test_nll_per_frame']:.3f} | - | - | - |")
    for w, o in r.get("by_guidance", {}).items():
      m, c = o["music21"], o["chords"]
      lines.append(f"| {name} | {r['test_nll_per_frame']:.3f} | {w} | {m['asked_major']:.2f} / "
                   f"{c['asked_major']:.2f} | {m['asked_minor']:.2f} / {c['asked_minor']:.2f} |")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--cond", default=os.path.join(common.ROOT, "runs", "music_keynorm"))
  p.add_argument("--uncond", default=os.path.join(common.ROOT, "runs", "music_keynorm_uncond"))
  p.add_argument("--base", default="", help="a configs/music.py:default run (own keys)")
  p.add_argument("--guidance", default="1,2,3")
  p.add_argument("--num", type=int, default=64)
  p.add_argument("--seed", type=int, default=1234)
  p.add_argument("--best", action="store_true",
                 help="judge each run's best checkpoint (by validation NLL), not its last")
  args = p.parse_args(argv)
  t0 = time.perf_counter()
  _ensure(args.cond, "keynorm")
  _ensure(args.uncond, "keynorm_uncond")
  ch = data_lib.load_chorales()
  chord = mus.ChordModeTest(ch.rolls("train"), ch.modes("train"))
  held = {"chord_test_accuracy": chord.accuracy(ch.rolls("test"), ch.modes("test")),
          "music21_accuracy": float(np.mean([(mus.key_of(r)[1] == "minor") == (m == 1)
                                             for r, m in zip([r[:64] for r in ch.rolls("test")], ch.modes("test"))]))}
  ws = [float(x) for x in args.guidance.split(",")]
  rows = [measure(wd, chord, ws, args.num, args.seed, args.best)
          for wd in (args.cond, args.uncond, args.base) if wd]
  result = {"rows": rows, "held_out_tests": held, "num_samples": args.num,
            "wall_s": round(time.perf_counter() - t0, 1), "table": table(rows)}
  common.save("music_mood", result)
  print(result["table"])
  print(f"held-out chorales judged right: music21 {held['music21_accuracy']:.2f}, chords "
        f"{held['chord_test_accuracy']:.2f}; {result['wall_s']} s")
  return result


if __name__ == "__main__":
  main()
