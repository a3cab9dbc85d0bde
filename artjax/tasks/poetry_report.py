"""`run.py eval` of a poetry run: bits per character on the test split beside n-gram
baselines, and the form, rhyme, tonal pattern and copying of samples beside held-out poems
(every figure and its floor computed by the same code)."""

from __future__ import annotations

import json
import math
import os

import jax
import numpy as np

from artjax.poetry import metrics, pingshui, strict, text
from artjax.tasks import ci_report

FORMS = ("wujue", "qijue", "wulu", "qilu")


def _scored(seqs, prefix_len: int = text.PREFIX) -> list:
  """Per poem: FORM, then the scored tokens (characters and EOS) -- the baselines' input."""
  out = []
  for s in np.asarray(seqs):
    end = int(np.flatnonzero(s == text.EOS)[0]) + 1 if np.any(s == text.EOS) else len(s)
    out.append(np.concatenate([[s[1]], s[prefix_len:end]]))
  return out


def bits_per_char(task, state) -> dict:
  test, train = task.sequences("test", author=""), task.sequences("train", author="")
  total, n = jax.jit(task.nll_sum)(state, test)
  tr, te = _scored(train, task.prefix_len), _scored(test, task.prefix_len)
  kn = metrics.KneserNey(tr, order=4, vocab_size=task.vocab_size)
  return {"model": float(total) / float(n) / math.log(2), "scored_chars": int(n),
          "unigram": metrics.unigram_bits([t[1:] for t in tr], [t[1:] for t in te], task.vocab_size),
          "kneser_ney_4gram": kn.bits(te, scored_from=1), "test_poems": int(len(test))}


def _sample_bodies(task, state, form: str, num: int, seed: int, rhyme: bool = False,
                   strict: bool = False) -> list[str]:
  c = task.config.sample
  old = {k: c[k] for k in ("form", "acrostic", "constrained", "rhyme", "strict", "template",
                           "rhyme_group")}
  c.update(form=form, acrostic="", constrained=True, rhyme=rhyme, strict=strict, template="",
           rhyme_group="")
  try:
    s = jax.jit(lambda st: task.sample(st, seed, num))(state)
  finally:
    c.update(old)
  return task.decode(s["tokens"])


def poem_stats(bodies, corpus: metrics.Corpus) -> dict:
  rhyme = [r for r in (metrics.rhymes(b) for b in bodies) if r is not None]
  tone = [t for t in (metrics.tonal_compliance(b) for b in bodies) if t is not None]
  lcs = [corpus.longest_common(b) for b in bodies]
  return {"n": len(bodies), "rhyme_rate": float(np.mean(rhyme)) if rhyme else None,
          "tonal_compliance": float(np.mean(tone)) if tone else None,
          "longest_common_with_train_median": float(np.median(lcs)) if lcs else None,
          "longest_common_with_train_max": int(max(lcs)) if lcs else None,
          "quotes_a_training_verse": (float(np.mean([corpus.quotes_a_verse(b) for b in bodies]))
                                      if bodies else None)}


def evaluate_poetry(task, state, workdir: str, num: int = 32, seed: int = 0) -> dict:
  """eval.json / eval.md of a poetry run (`num` samples per form): every regulated form the
  held-out poems have (all four for Tang poems; those a user's Chinese corpus has), and for a
  user's corpus (text:PATH) free verse, unconstrained, beside the held-out poems."""
  poems = task.poems().splits
  corpus = metrics.Corpus(poems["train"]["body"])
  result = {"workdir": os.path.abspath(workdir), "step": int(state["step"]), "seed": seed,
            "bits_per_char": bits_per_char(task, state), "rhyme_probe": rhyme_probe(task, state),
            "forms": {}}
  for form in judged_forms(task, poems["test"]["form"]):
    result["forms"][form] = _form_block(task, state, form, num, seed, corpus, poems["test"])
  if task.config.sample.form == "ci":
    result["ci"] = ci_report.ci_block(task, state, max(1, min(num, 16)), seed)
  elif task.config.data.name != "poetry":
    free = _free_bodies(task, state, num, seed)
    result["free_verse"] = {"samples": poem_stats(free, corpus),
                            "held_out": poem_stats(poems["test"]["body"][:num], corpus),
                            "examples": free[:3]}
  with open(os.path.join(workdir, "eval.json"), "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2, ensure_ascii=False)
  md = report_md(result)
  with open(os.path.join(workdir, "eval.md"), "w", encoding="utf-8") as f:
    f.write(md)
  print(md)
  return result


def judged_forms(task, test_forms) -> list[str]:
  """The regulated forms among the held-out poems whose verse punctuation the vocabulary has
  (constrained decoding writes ， and 。)."""
  present = {text.FORMS[int(f)] for f in np.asarray(test_forms)}
  ok = all(ch in task.vocab.index for ch in "，。")
  return [f for f in FORMS if f in present and ok]


def _form_block(task, state, form, num, seed, corpus, test) -> dict:
  constrained = _sample_bodies(task, state, form, num, seed)
  held = [b for b, f in zip(test["body"], test["form"]) if text.FORMS[int(f)] == form][:num]
  return {"samples": poem_stats(constrained, corpus), "held_out": poem_stats(held, corpus),
          "form_compliance_unconstrained": unconstrained_compliance(task, state, form, num, seed),
          "rhyme_rate_with_rhyme_constraint": poem_stats(_sample_bodies(
              task, state, form, num, seed, rhyme=True), corpus)["rhyme_rate"],
          "pingshui": _pingshui(task, state, form, num, seed, constrained, held),
          "examples": constrained[:3]}


def _free_bodies(task, state, num: int, seed: int, form: str = "other") -> list[str]:
  """Samples with the FORM token of `form` and no decoding constraint."""
  c = task.config.sample
  old = (c.form, c.acrostic, c.constrained)
  c.form, c.acrostic, c.constrained = form, "", False
  try:
    s = jax.jit(lambda st: task.sample(st, seed, num))(state)
  finally:
    c.form, c.acrostic, c.constrained = old
  return task.decode(s["tokens"])


def _pingshui(task, state, form, num, seed, samples, held) -> dict:
  """The 平水韻 rates of samples (the form's template only), held-out poems, --strict
  samples, and the samples' share of the held-out rate (issue #31's bar: 0.8)."""
  out = {"samples": pingshui.rates(samples, form), "held_out": pingshui.rates(held, form),
         "strict": pingshui.rates(_sample_bodies(task, state, form, num, seed, strict=True), form)}
  h = out["held_out"]
  out["share_of_held_out"] = {k: (out["samples"][k] / h[k] if h[k] else None)
                              for k in ("rhyme", "tones", "regulated")}
  return out


def unconstrained_compliance(task, state, form: str, num: int, seed: int) -> float:
  """Share of samples with the FORM token for `form` but no decoding constraint that come
  out in that form anyway."""
  bodies = _free_bodies(task, state, num, seed + 1, form)
  return float(np.mean([metrics.form_of(b) == form for b in bodies]))


def _fmt(v):
  return "-" if v is None else f"{v:.2f}"


def _fmt0(v):
  return "-" if v is None else f"{v:.0f}"


def report_md(r: dict) -> str:
  b = r["bits_per_char"]
  lines = [f"# poetry eval of {r['workdir']} (step {r['step']})", "",
           f"Test split, {b['test_poems']} poems, {b['scored_chars']:,} scored characters "
           "(punctuation and the end token included):", "",
           "| model | bits/char |", "|---|---|",
           f"| **this model** | **{b['model']:.3f}** |",
           f"| interpolated Kneser-Ney 4-gram (ours, same tokens) | {b['kneser_ney_4gram']:.3f} |",
           f"| unigram (add-one; ours, same tokens) | {b['unigram']:.3f} |"]
  if r["forms"]:
    lines += _forms_md(r)
  p = r["rhyme_probe"]
  if p["positions"]:
    lines += ["", f"Rhyme probe ({p['poems']} held-out poems that rhyme, {p['positions']} later rhyme "
              f"positions): the model puts {p['model_mass_on_group']:.3f} of its probability on the "
              f"poem's rhyme group, against the group's prior {p['prior_of_group']:.3f} "
              f"({p['ratio']:.1f}x)."]
  if r["forms"]:
    lines += ["", "Examples (constrained decoding):", ""]
    lines += [f"- {form}: " + " / ".join(f["examples"][:2]) for form, f in r["forms"].items()]
  if "free_verse" in r:
    lines += _free_md(r["free_verse"])
  if "ci" in r:
    lines += ci_report.report_md(r["ci"])
  return "\n".join(lines) + "\n"


def _forms_md(r: dict) -> list[str]:
  lines = ["", "| form | unconstrained form compliance | rhyme (samples / held-out / samples with --rhyme) | tonal rules (samples / held-out) | longest common substring with train, median/max (samples / held-out) | quotes a training verse (samples / held-out) |",
           "|---|---|---|---|---|---|"]
  for form, f in r["forms"].items():
    s, h = f["samples"], f["held_out"]
    lines.append(f"| {form} | {f['form_compliance_unconstrained']:.2f} | {_fmt(s['rhyme_rate'])} / "
                 f"{_fmt(h['rhyme_rate'])} / {_fmt(f['rhyme_rate_with_rhyme_constraint'])} | {_fmt(s['tonal_compliance'])} / {_fmt(h['tonal_compliance'])} | "
                 f"{_fmt0(s['longest_common_with_train_median'])}/{s['longest_common_with_train_max']} / "
                 f"{_fmt0(h['longest_common_with_train_median'])}/{h['longest_common_with_train_max']} | "
                 f"{_fmt(s['quotes_a_training_verse'])} / {_fmt(h['quotes_a_training_verse'])} |")
  lines += ["", "By the 平水韻 (artjax/poetry/pingshui.py: one 平聲 group at the even verse ends; "
            "a standard tonal template, 一三五不論, no 孤平 or 三平尾), samples (the form's "
            "template only) / held-out poems / --strict samples, and the samples' share of the "
            "held-out rate:", "",
            "| form | rhyme | tones | both | samples / held-out: rhyme, tones |",
            "|---|---|---|---|---|"]
  for form, f in r["forms"].items():
    p = f["pingshui"]
    s, h, st, share = p["samples"], p["held_out"], p["strict"], p["share_of_held_out"]
    lines.append(f"| {form} | " + " | ".join(f"{_fmt(s[k])} / {_fmt(h[k])} / {_fmt(st[k])}"
                                             for k in ("rhyme", "tones", "regulated"))
                 + f" | {_fmt(share['rhyme'])}, {_fmt(share['tones'])} |")
  return lines


def _free_md(fv: dict) -> list[str]:
  s, h = fv["samples"], fv["held_out"]
  return (["", f"Free verse (unconstrained samples / held-out poems): longest common substring "
           f"with the training poems, median/max {_fmt0(s['longest_common_with_train_median'])}/"
           f"{s['longest_common_with_train_max']} / {_fmt0(h['longest_common_with_train_median'])}/"
           f"{h['longest_common_with_train_max']}; quotes a training verse "
           f"{_fmt(s['quotes_a_training_verse'])} / {_fmt(h['quotes_a_training_verse'])}.", "",
           "Examples:", ""] + ["    " + e.replace("\n", "\n    ") + "\n" for e in fv["examples"][:2]])


def rhyme_targets(bodies, forms, vocab: text.Vocab) -> list:
  """[(body, form, [(character index, group)])]: each regulated-rhyming poem's later rhyme
  positions (the 2nd even verse's end on), with the group its earlier rhymes set."""
  out = []
  for body, form in zip(bodies, forms):
    if form not in pingshui.SHAPES:
      continue
    c = pingshui.check(body, form)
    if not c or not c["rhyme"]:
      continue
    verses, n = pingshui.SHAPES[form]
    pos = [v * (n + 1) + n - 1 for v in range(3, verses, 2)]   # verse 4, 6, 8's last character
    out.append((body, form, [(p, c["group"]) for p in pos]))
  return out


def rhyme_probe(task, state, split: str = "test", num: int = 256) -> dict:
  """Does the model predict a rhyming final character better than chance? Over held-out
  poems that rhyme by the 平水韻: the model's probability mass on the rhyme group at each
  later rhyme position (given the poem so far), beside the group's prior (its share of the
  same positions' characters in the training split's rhyming poems). A model with a rhyme
  plan reads the poem's true plan token first (as its samples read the plan they drew)."""
  v, sp = task.vocab, task.poems().splits
  groups = {g: np.flatnonzero(m) for g, m in strict.group_masks(v, task.vocab_size).items()}
  train = rhyme_targets(sp["train"]["body"], [text.FORMS[int(f)] for f in sp["train"]["form"]], v)
  counts = {}
  for body, _, targets in train:
    for p, _ in targets:
      for g in pingshui.dictionary()[1].get(body[p], ()):
        counts[g] = counts.get(g, 0) + 1
  total = sum(len(t) for _, _, t in train)
  held = rhyme_targets(sp[split]["body"], [text.FORMS[int(f)] for f in sp[split]["form"]], v)
  held = [h for h in held if len(h[0]) <= task.config.data.max_chars][:num]
  if not held:
    return {"positions": 0, "poems": 0, "model_mass_on_group": None, "prior_of_group": None,
            "ratio": None}
  seqs = np.stack([task.sequence(b, text.FORMS.index(f), text.ANY_AUTHOR) for b, f, _ in held])
  probs = np.asarray(jax.jit(lambda st, s: jax.nn.softmax(
      task.model(task.model_params(st)[0])(s[:, :-1]).astype(np.float32), -1))(state, seqs))
  model, prior = [], []
  for i, (_, _, targets) in enumerate(held):
    for p, g in targets:           # logits at index prefix_len - 1 + p predict character p
      model.append(float(probs[i, task.prefix_len - 1 + p][groups.get(g, [])].sum()))
      prior.append(counts.get(g, 0) / max(total, 1))
  return {"positions": len(model), "poems": len(held),
          "model_mass_on_group": float(np.mean(model)), "prior_of_group": float(np.mean(prior)),
          "ratio": float(np.mean(model) / max(np.mean(prior), 1e-9))}
