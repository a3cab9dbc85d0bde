"""Decoding a ci to its tune (artjax.poetry.ci.Tune), in the shapes of strict.Tables so the
same sampler runs it:

* constrained (`--form=ci --tune=T`): the tune's template (a Han character at each of its
  characters, its punctuation at each clause end, the stanza break, then EOS);
* strict (`--strict`): also every rhyme position's character from one rhyme unit of
  词林正韵 (artjax.poetry.cilin) of the tune's tone, drawn per poem among the units with
  more characters in the vocabulary than the tune has rhyme positions; no character
  twice at the rhyme positions (重韻) and, while a fresh one fits, none twice in the poem.

The arrays have the shapes of regulated verse's (`padded`): tone [4, T, V] (one template,
then rows never drawn), ok [4], rhyme_pos [4, T], groups [30, V] (the tone's 14 or 19 rhyme
units, then empty rows), group_ok [30].
"""

from __future__ import annotations

import functools

import numpy as np

from artjax import ConfigError
from artjax.poetry import ci, cilin, strict, text


@functools.lru_cache(maxsize=8)
def unit_masks(vocab: text.Vocab, size: int, tone: str) -> tuple[list, np.ndarray]:
  """(units of `tone`, bool [U, size]: the vocabulary's Han characters of each)."""
  names = cilin.all_units(tone)
  masks = np.zeros((len(names), size), bool)
  at = {u: i for i, u in enumerate(names)}
  for i, ch in enumerate(vocab.chars):
    if text.is_han(ch):
      for u in cilin.units(ch):
        if u in at:
          masks[at[u], vocab.char0 + i] = True
  return names, masks


def template_table(vocab: text.Vocab, tune: ci.Tune, size: int, prime: str = "") -> np.ndarray:
  """bool [len(template) + 1, size]: the tokens allowed at each step (EOS last)."""
  tpl = tune.template()
  eye = np.eye(size, dtype=bool)
  han = np.zeros(size, bool)
  han[vocab.char0:vocab.size] = [text.is_han(c) for c in vocab.chars]
  rows = [han if slot == "c" else eye[vocab.index[slot]] for slot in tpl] + [eye[text.EOS]]
  table = np.stack(rows)
  for t, ch in enumerate(prime):
    table[t] = eye[vocab.index[ch]]
  return table


def check_request(vocab: text.Vocab, tune: ci.Tune, prime: str) -> None:
  """ConfigError when the vocabulary lacks the template's punctuation or the prime does not
  fit the tune's template."""
  missing = [ch for ch in (ci.COMMA, ci.PERIOD, ci.BREAK) if ch not in vocab.index]
  if missing:
    raise ConfigError(f"the model's vocabulary lacks {missing!r}, which a {tune.name} needs")
  unknown = vocab.missing(prime)
  if unknown:
    raise ConfigError(f"--prime {prime!r}: {''.join(unknown)!r} not in the model's vocabulary")
  tpl = tune.template()
  bad = [i for i, ch in enumerate(prime)
         if i >= len(tpl) or (tpl[i] == "c") != text.is_han(ch) or (tpl[i] != "c" and tpl[i] != ch)]
  if bad:
    raise ConfigError(f"--prime {prime!r} does not fit {tune.name} ({tpl.replace(ci.BREAK, '/')}) "
                      f"at character {bad[0] + 1}")


def tables(vocab: text.Vocab, size: int, tune: ci.Tune, steps: int, *, strict_: bool,
           prime: str = "") -> strict.Tables:
  """The Tables of a ci of `tune`, `steps` rows (0: the template and EOS)."""
  check_request(vocab, tune, prime)
  table = template_table(vocab, tune, size, prime)
  steps = max(steps, len(table))
  pos = np.zeros(steps, bool)
  names, groups = unit_masks(vocab, size, tune.tone)
  ok = np.zeros(len(names), bool)
  if strict_:
    pos[[t for t in tune.rhyme_steps() if t >= len(prime)]] = True
    ok = groups.sum(-1) > len(tune.rhymes) + 1
    for t in tune.rhyme_steps():
      if t < len(prime):                  # a primed rhyme character fixes the unit
        ok &= groups[:, vocab.index[prime[t]]]
    if not ok.any():
      raise ConfigError(f"no rhyme unit of 词林正韵 ({tune.tone}) fits {tune.name}"
                        + (f" and the rhyme characters of --prime {prime!r}" if prime else
                           " in the model's vocabulary"))
  else:
    ok[0] = True
  return padded(strict.Tables(tone=strict._padded(table, steps)[None], ok=np.asarray([True]),
                              rhyme_pos=pos[None], groups=groups, group_ok=ok,
                              no_repeat=strict_))


def padded(t: strict.Tables, templates: int = 4, units: int = 30) -> strict.Tables:
  """`t` in the shapes of regulated verse's tables (4 templates, 30 groups; the extra rows
  never drawn), so one compiled sampler, and the exported one, decode both."""
  def pad(a, n):
    return np.concatenate([a, np.zeros((n - a.shape[0],) + a.shape[1:], a.dtype)])
  return strict.Tables(tone=pad(t.tone, templates), ok=pad(t.ok, templates),
                       rhyme_pos=pad(t.rhyme_pos, templates), groups=pad(t.groups, units),
                       group_ok=pad(t.group_ok, units), no_repeat=t.no_repeat)
