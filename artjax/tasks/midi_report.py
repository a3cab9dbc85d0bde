"""`run.py eval` of a midi: run: bits per token on the test pieces beside the n-gram baselines
of the same tokens (a Markov chain: interpolated Kneser-Ney 4-gram; add-one unigram), and what
the samples hold beside held-out pieces (notes, tracks, instruments, drums)."""

from __future__ import annotations

import json
import math
import os

import jax
import numpy as np

from artjax.evaluation.ngram import KneserNey, unigram_bits


def bits_per_token(task, state) -> dict:
  total, n = jax.jit(task.nll_sum)(state, task.windows("test"))
  seq = lambda p: np.concatenate([[task.bos], p, [task.eos]])
  train = [seq(p) for p in task.pieces("train")]
  test = [seq(p) for p in task.pieces("test")]
  kn = KneserNey(train, order=4, vocab_size=task.vocab_size)
  return {"model": float(total) / float(n) / math.log(2), "scored_tokens": int(n),
          "kneser_ney_4gram": kn.bits(test, scored_from=1),
          "unigram": unigram_bits([t[1:] for t in train], [t[1:] for t in test], task.vocab_size),
          "test_pieces": len(test)}


def piece_stats(scores) -> dict:
  """What a list of symusic Scores (None: no notes) holds."""
  real = [s for s in scores if s is not None]
  tracks = [[t for t in s.tracks if t.notes] for s in real]
  return {"n": len(scores), "with_notes": len(real) / max(len(scores), 1),
          "notes_median": float(np.median([s.note_num() for s in real])) if real else None,
          "tracks_mean": float(np.mean([len(t) for t in tracks])) if real else None,
          "with_drums": float(np.mean([any(x.is_drum for x in t) for t in tracks])) if real else None,
          "programs": sorted({int(x.program) for t in tracks for x in t if not x.is_drum})}


def style_of(score) -> dict:
  """A piece's mode and tonal clarity (music21's key analysis: Krumhansl-Schmuckler, its
  correlation with the best key profile) and its metre: the share of onsets on the eighth-note
  grid and the share of bars with an onset on their downbeat (the first time signature)."""
  import tempfile
  from music21 import converter
  with tempfile.TemporaryDirectory() as d:
    score.dump_midi(os.path.join(d, "p.mid"))
    try:
      key = converter.parse(os.path.join(d, "p.mid")).analyze("key")
    except Exception:   # no pitched notes (drums only): no key
      key = None
  tpq = int(score.ticks_per_quarter)
  ts = score.time_signatures[0] if len(score.time_signatures) else None
  bar = tpq * 4 * (ts.numerator / ts.denominator if ts else 1.0)
  onsets = np.asarray(sorted({n.time for t in score.tracks for n in t.notes}), np.float64)
  bars = np.arange(0, onsets.max() + 1, bar)
  on_bar = np.isin(np.round(bars), np.round(onsets))
  return {"minor": None if key is None else float(key.mode == "minor"),
          "clarity": None if key is None else float(key.correlationCoefficient),
          "on_grid": float(np.mean(np.mod(onsets, tpq / 2) == 0)),
          "downbeats": float(np.mean(on_bar))}


def style_stats(scores) -> dict:
  st = [style_of(s) for s in scores if s is not None]
  out = {}
  for k in ("minor", "clarity", "on_grid", "downbeats"):
    v = [x[k] for x in st if x[k] is not None]
    out[k] = float(np.mean(v)) if v else None
  return out


def evaluate_midi(task, state, workdir: str, num: int = 16, seed: int = 0) -> dict:
  samples = jax.jit(lambda st: task.sample(st, seed, num))(state)["tokens"]
  held = [task.tok.decode([int(t) for t in p]) for p in task.pieces("test")[:num]]
  r = {"workdir": os.path.abspath(workdir), "step": int(state["step"]), "seed": seed,
       "bits_per_token": bits_per_token(task, state),
       "samples": piece_stats([task.piece_of(row) for row in np.asarray(samples)]),
       "held_out": piece_stats([s if s.note_num() else None for s in held])}
  r["samples"]["style"] = style_stats([task.piece_of(row) for row in np.asarray(samples)])
  r["held_out"]["style"] = style_stats([s if s.note_num() else None for s in held])
  with open(os.path.join(workdir, "eval.json"), "w") as f:
    json.dump(r, f, indent=2)
  b, s, h = r["bits_per_token"], r["samples"], r["held_out"]
  fmt = lambda v: "-" if v is None else f"{v:.2f}"
  md = "\n".join([
      f"# midi eval of {r['workdir']} (step {r['step']})", "",
      f"Test pieces: {b['test_pieces']}, {b['scored_tokens']:,} scored tokens.", "",
      "| model | bits/token |", "|---|---|", f"| **this model** | **{b['model']:.3f}** |",
      f"| Kneser-Ney 4-gram Markov chain (same tokens) | {b['kneser_ney_4gram']:.3f} |",
      f"| unigram (add-one) | {b['unigram']:.3f} |", "",
      "| | with notes | notes (median) | tracks | with drums | GM programs |", "|---|---|---|---|---|---|",
      f"| samples ({s['n']}) | {fmt(s['with_notes'])} | {fmt(s['notes_median'])} | {fmt(s['tracks_mean'])} | "
      f"{fmt(s['with_drums'])} | {s['programs'][:12]} |",
      f"| held-out ({h['n']}) | {fmt(h['with_notes'])} | {fmt(h['notes_median'])} | {fmt(h['tracks_mean'])} | "
      f"{fmt(h['with_drums'])} | {h['programs'][:12]} |", "",
      "Style (music21's key analysis; note onsets against the first time signature):", "",
      "| | minor | key clarity | onsets on the 8th grid | bars with a downbeat onset |",
      "|---|---|---|---|---|"] + [
      f"| {who} | {fmt(x['minor'])} | {fmt(x['clarity'])} | {fmt(x['on_grid'])} | {fmt(x['downbeats'])} |"
      for who, x in (("samples", s["style"]), ("held-out", h["style"]))]) + "\n"
  with open(os.path.join(workdir, "eval.md"), "w") as f:
    f.write(md)
  print(md)
  return r
