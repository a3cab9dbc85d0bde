"""`run.py eval` for music models: eval.json and eval.md (see artjax.music.metrics)."""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np

from artjax.music import data as data_lib
from artjax.music import metrics as mus
from artjax.music import encoding as enc


def test_nll_per_frame(task, state, split: str = "test") -> tuple[float, int]:
  ins, tgts, score, frames = task.windows(split)
  total = jax.jit(task.nll_of_windows)(state, ins, tgts, score)
  return float(total) / frames, frames


def mode_token_nll(task, state, split: str = "test") -> dict:
  """Does a mode-conditional model use its control token? Test NLL per frame of the major
  and of the minor chorales, each scored with the true mode token, the opposite one and
  NOMODE (the classifier-free-guidance token). A model that uses the token scores the
  true token lowest; equal numbers mean the token is ignored."""
  eval_windows = enc.eval_windows
  rows, modes = task.split_tokens(split)
  nll = jax.jit(task.nll_of_windows)
  out = {}
  for want, name in ((0, "major"), (1, "minor")):
    sel = [r for r, m in zip(rows, modes) if m == want]
    if not sel:
      continue
    res = {}
    for label, tok in (("true", want), ("opposite", 1 - want), ("none", None)):
      pre = enc.prefix_tokens(tok) if tok is not None else [enc.BOS, enc.NOMODE]
      ins, tgts, score, frames = eval_windows(sel, [pre] * len(sel), task.config.data.window)
      res[label] = float(nll(state, ins, tgts, score)) / frames
    res.update(chorales=len(sel), frames=frames)
    out[name] = res
  return out


def _mode_tests(result, task, ds, rolls, modes, test_rolls) -> None:
  """The samples' and the held-out chorales' minor shares by music21's key analysis and by
  chord qualities (`ChordModeTest`, fitted on every training chorale), overall and by the
  requested mode, into result["samples"] / result["held_out"]."""
  chord = mus.ChordModeTest(ds.rolls("train"), ds.modes("train"))
  modes = np.asarray(modes)
  for name, test in (("minor_share", mus.minor_share), ("chord_minor_share", chord.minor_share)):
    result["samples"][name] = test(rolls)
    result["samples"][name + "_by_requested_mode"] = {
        label: test([r for r, m in zip(rolls, modes) if m == i])
        for i, label in enumerate(("major", "minor")) if task.conditional and np.any(modes == i)}
    result["held_out"][name] = test(test_rolls)
  result["held_out"]["chord_test_accuracy"] = chord.accuracy(ds.rolls("test"), ds.modes("test"))


def evaluate_music(task, state, workdir: str, num: int, seed: int = 0) -> dict:
  t0 = time.perf_counter()
  nll, frames = test_nll_per_frame(task, state)
  ds = data_lib.load_chorales(task.config.data.data_dir or None)
  want = {"all": None, "major": 0, "minor": 1}[task.config.data.mode]
  pick = lambda split: [r for r, m in zip(ds.rolls(split), ds.modes(split)) if want is None or m == want]
  train_rolls, test_rolls = pick("train"), pick("test")
  samples = jax.device_get(jax.jit(task.sample, static_argnums=2)(state, seed, num))
  rolls = [enc.tokens_to_roll(t) for t in samples["tokens"]]
  index = mus.FrameIndex(train_rolls)
  length = int(np.median([len(r) for r in rolls]))
  held_out = [r[:length] for r in test_rolls if len(r) >= length] or test_rolls
  result = {
      "workdir": os.path.abspath(workdir), "step": int(state["step"]), "seed": seed,
      "test_split": {"chorales": len(test_rolls), "frames": frames,
                     "mode": task.config.data.mode},
      "nll_per_frame": nll,
      "baselines": {"independent_bernoulli": mus.bernoulli_baseline(train_rolls, test_rolls),
                    "per_key_markov": mus.markov_baseline(train_rolls, test_rolls)},
      "published_jsb_chorales": mus.PUBLISHED,
      "samples": {"num": num, "median_frames": length,
                  "copy_run_frames": mus.copy_stats(index, rolls)},
      "held_out": {"copy_run_frames": mus.copy_stats(index, held_out)},
  }
  _mode_tests(result, task, ds, rolls, samples["modes"], test_rolls)
  if task.conditional:
    result["mode_token_nll"] = mode_token_nll(task, state)
  result["eval_seconds"] = round(time.perf_counter() - t0, 1)
  with open(os.path.join(workdir, "eval.json"), "w") as f:
    json.dump(result, f, indent=2)
  c, h = result["samples"]["copy_run_frames"], result["held_out"]["copy_run_frames"]
  lines = [f"# eval of {workdir} (step {result['step']})", "",
           f"Test NLL, nats per quarter-note frame ({len(test_rolls)} chorales, {frames} frames; "
           "JSB-like: our split, not JSB's):", "", "| model | nats/frame |", "|---|---|",
           f"| **this model** | **{nll:.3f}** |",
           f"| independent Bernoulli per key (ours, same split) | {result['baselines']['independent_bernoulli']:.3f} |",
           f"| per-key Markov chain (ours, same split) | {result['baselines']['per_key_markov']:.3f} |"]
  lines += [f"| {k} (published, JSB split) | {v:.2f} |" for k, v in mus.PUBLISHED.items()]
  lines += ["", f"Copying: longest verbatim run of training frames, median/p90/max: samples "
            f"{c['median']:.0f}/{c['p90']:.0f}/{c['max']} vs held-out chorales "
            f"{h['median']:.0f}/{h['p90']:.0f}/{h['max']} (first {length} frames).",
            f"Minor share (music21 key analysis): samples {result['samples']['minor_share']:.2f}, "
            f"held-out chorales {result['held_out']['minor_share']:.2f}."]
  if result["samples"]["minor_share_by_requested_mode"]:
    lines.append("By requested mode: " + ", ".join(
        f"{k} -> {v:.2f} minor" for k, v in result["samples"]["minor_share_by_requested_mode"].items()))
  sa, ho = result["samples"], result["held_out"]
  lines.append(f"Minor share by chord qualities (a second test, fitted on the training chorales; "
               f"{ho['chord_test_accuracy']:.2f} right on the held-out ones): samples "
               f"{sa['chord_minor_share']:.2f}, held-out chorales {ho['chord_minor_share']:.2f}"
               + ("" if not sa["chord_minor_share_by_requested_mode"] else "; by requested mode: " + ", ".join(
                   f"{k} -> {v:.2f}" for k, v in sa["chord_minor_share_by_requested_mode"].items())) + ".")
  if "mode_token_nll" in result:
    lines += ["", "Mode token (test NLL per frame when the control token is the true mode / the "
              "opposite mode / none):"]
    lines += [f"- {k} chorales ({v['chorales']}): {v['true']:.3f} / {v['opposite']:.3f} / {v['none']:.3f}"
              for k, v in result["mode_token_nll"].items()]
  report = "\n".join(lines)
  with open(os.path.join(workdir, "eval.md"), "w") as f:
    f.write(report + "\n")
  print(report)
  return result
