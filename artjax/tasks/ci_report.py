"""`run.py eval` of a model of ci: for the most common tunes, the share of samples that have
their tune's shape (clause lengths), stanza break and rhyme (one 词林正韵 unit at the tune's
rhyme positions), unconstrained (the tune's token alone), with the tune's template, and
--strict, beside the held-out ci of the same tunes measured by the same code
(artjax.poetry.ci.Tune.check)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from artjax.poetry import ci_strict, metrics, strict, text

MODES = ("free", "template", "strict")
MEASURES = ("shape", "stanza", "rhyme")


def judged_tunes(task, top: int = 30) -> list:
  """The `top` tunes with most training poems that have a token and fit data.max_chars."""
  v, limit = task.vocab, task.config.data.max_chars
  ok = [t for t in task.tunes.values() if t.name in v.authors and len(t.template()) <= limit]
  return sorted(ok, key=lambda t: (-t.poems, t.name))[:top]


def _tables(task, tune, mode: str, steps: int) -> strict.Tables:
  if mode == "free":
    return strict.tables_for(task.vocab, task.vocab_size, steps, form="other", strict_=False,
                             constrained=False, max_chars=task.config.data.max_chars)
  return ci_strict.tables(task.vocab, task.vocab_size, tune, steps, strict_=mode == "strict")


def rates(tune, bodies) -> dict:
  checks = [tune.check(b) for b in bodies]
  return {k: float(np.mean([c[k] for c in checks])) if checks else None for k in MEASURES}


def sample_tunes(task, state, tunes, num: int, seed: int) -> dict:
  """{mode: {tune: [num bodies]}}: one compiled decoder for every tune and mode (the tables
  are its inputs)."""
  steps = task.config.data.max_chars + 1
  decode = jax.jit(lambda st, s, prompt, *arrays: task.decode_tables(st, s, prompt, arrays))
  out = {m: {} for m in MODES}
  for tune in tunes:
    prompt = jnp.tile(jnp.asarray([[text.BOS, text.FORM0 + text.FORMS.index("other"),
                                    task.vocab.author_token(tune.name)]], jnp.int32), (num, 1))
    for mode in MODES:
      toks = decode(state, jnp.int32(seed), prompt, *_tables(task, tune, mode, steps).arrays())
      out[mode][tune.name] = task.decode(toks)
  return out


def ci_block(task, state, num: int = 8, seed: int = 0, top: int = 30) -> dict:
  """Per tune and on average over the judged tunes: the rates of each decoding and of the
  held-out ci; free samples' copying beside the held-out ci's."""
  tunes = judged_tunes(task, top)
  test = task.poems().splits["test"]
  samples = sample_tunes(task, state, tunes, num, seed)
  per = {}
  for tune in tunes:
    held = [b for b, t in zip(test["body"], test["author"]) if t == tune.name]
    per[tune.name] = {"poems": tune.poems, "template": tune.template().replace(ci_strict.ci.BREAK, "/"),
                      "rhymes": list(tune.rhymes), "tone": tune.tone, "held_out_n": len(held),
                      "held_out": dict(rates(tune, held), stanza=None),  # the data put it there
                      **{m: rates(tune, samples[m][tune.name]) for m in MODES}}
  mean = {w: {k: _mean([p[w][k] for p in per.values()]) for k in MEASURES}
          for w in MODES + ("held_out",)}
  corpus = metrics.Corpus(task.poems().splits["train"]["body"])
  free = [b for bs in samples["free"].values() for b in bs]
  lcs = [corpus.longest_common(b) for b in free]
  return {"tunes": per, "mean": mean, "samples_per_tune": num,
          "free_longest_common_with_train_median": float(np.median(lcs)) if lcs else None,
          "examples": {t.name: samples["strict"][t.name][:1] for t in tunes[:3]}}


def _mean(values) -> float | None:
  values = [v for v in values if v is not None]
  return float(np.mean(values)) if values else None


def _fmt(v) -> str:
  return "-" if v is None else f"{v:.2f}"


def report_md(block: dict) -> list[str]:
  m = block["mean"]
  lines = ["", f"Ci by their tunes ({len(block['tunes'])} most common tunes, "
           f"{block['samples_per_tune']} samples each; artjax/poetry/ci.py): the share with the "
           "tune's clause lengths, its stanza break, and one 词林正韵 unit at its rhyme positions", "",
           "| decoding | shape | stanza break | rhyme |", "|---|---|---|---|"]
  names = {"free": "unconstrained (the tune's token)", "template": "the tune's template",
           "strict": "--strict",
           "held_out": "held-out ci of the same tunes (their break is the data's)"}
  for w in MODES + ("held_out",):
    lines.append(f"| {names[w]} | " + " | ".join(_fmt(m[w][k]) for k in MEASURES) + " |")
  lines += ["", "| tune | poems | unconstrained shape / rhyme | strict rhyme | held-out shape / rhyme |",
            "|---|---|---|---|---|"]
  for name, p in block["tunes"].items():
    lines.append(f"| {name} | {p['poems']} | {_fmt(p['free']['shape'])} / "
                 f"{_fmt(p['free']['rhyme'])} | {_fmt(p['strict']['rhyme'])} | "
                 f"{_fmt(p['held_out']['shape'])} / {_fmt(p['held_out']['rhyme'])} |")
  lines += ["", "Examples (--strict):", ""]
  lines += [f"- {t}: {b[0].replace(chr(10), ' / ')}" for t, b in block["examples"].items()]
  return lines
