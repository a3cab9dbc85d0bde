"""Strict decoding of regulated verse: every poem passes artjax.poetry.pingshui.check.

A strict request (a form, optionally a template name, a 平水韻 group, an acrostic, a prime)
becomes tables the sampler applies per step (the approach of THUNLP's Jiuge: off-tone
characters masked per position, off-group characters at rhyme positions), built here on the
host before anything compiles:

* `tone` bool [K, steps, V]: for each of the K templates that fit the request, the tokens
  allowed at each step. A verse position whose tone the template fixes allows the
  dictionary's characters of that tone (polyphonic ones fit both); the free positions
  (一三五不論) allow any dictionary character, except where freedom would break a rule: in a
  平-ending 仄仄仄平平 verse the free position before the last two is 仄 (no 三平尾), and in a
  平平仄仄平 verse one free position is 平 (no 孤平). Characters outside the dictionary are
  never drawn (their tone is unknown).
* `rhyme_pos` bool [K, steps]: the even verses' last characters, and the first verse's when
  the template rhymes there (首句入韻); `groups` bool [G, V]: the 平聲 groups (with enough
  characters in the vocabulary) that the poem's rhyme may come from.

Each poem draws its template and group from the seed. While decoding, a character already
in the poem is not drawn again while a fresh one fits (犯重), and a rhyme character never
twice (重韻). A dead end cannot happen: every position allows at least one character by
construction (checked here), and a group offers more characters than the poem has rhyme
positions, so the fallback (a repeat outside the rhymes) always exists. A request no
template can meet (an acrostic character whose tone contradicts the template) is one
ConfigError.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from artjax import ConfigError
from artjax.nn import sampling
from artjax.poetry import pingshui, text

TEMPLATE_NAMES = ("平起", "仄起", "平起首句入韻", "平起首句不入韻", "仄起首句入韻", "仄起首句不入韻")
ALIASES = {"pingqi": "平起", "zeqi": "仄起"}


def canonical_template(name: str) -> str:
  """'' (any), or one of TEMPLATE_NAMES (pinyin aliases accepted); ConfigError otherwise."""
  name = ALIASES.get(name, name)
  if name and name not in TEMPLATE_NAMES:
    raise ConfigError(f"unknown template {name!r}; choose one of {', '.join(TEMPLATE_NAMES)} "
                      f"(or {', '.join(ALIASES)})")
  return name


def kinds_for(form: str, name: str) -> list[str]:
  """First-verse line types (A-D) of the templates called `name` ('' = all four)."""
  n = pingshui.SHAPES[form][1]
  return [k for k in "ABCD" if not name or pingshui.template_name(k, n).startswith(name)]


def line_rules(kind: str, n: int, fixed: dict) -> list[str] | None:
  """Tone each position of a verse needs: 'p', 'z' or '*' (free), given the characters
  `fixed` there ({position: char}); None when the fixed characters cannot fit."""
  want = pingshui.line_pattern(kind, n)
  free = {0, 2} if n == 5 else {0, 2, 4}
  rules = ["*" if i in free else want[i] for i in range(n)]
  if kind == "D":                                   # no 三平尾
    rules[n - 3] = "z"
  if kind == "B":                                   # no 孤平: a second 平 among the free positions
    spots = [i for i in sorted(free, key=lambda i: i != n - 5)]
    if not any(i in fixed and "p" in pingshui.tone_of(fixed[i]) for i in spots):
      open_ = [i for i in spots if i not in fixed]
      if not open_:
        return None
      rules[open_[0]] = "p"
  for i, ch in fixed.items():
    if rules[i] != "*" and rules[i] not in pingshui.tone_of(ch):
      return None
  return rules


@dataclasses.dataclass(frozen=True)
class Tables:
  """The masks of a request, in the fixed shapes the exported poetry sampler takes."""
  tone: np.ndarray        # bool [4, T, V]: the templates whose first verse is A, B, C, D
  ok: np.ndarray          # bool [4]: which of them the request allows (drawn per poem)
  rhyme_pos: np.ndarray   # bool [4, T]
  groups: np.ndarray      # bool [30, V]: the 平聲 groups of pingshui.level_groups()
  group_ok: np.ndarray    # bool [30]
  no_repeat: bool         # 犯重 and 重韻 avoided (strict decoding)

  def arrays(self) -> tuple:
    return (self.tone, self.ok, self.rhyme_pos, self.groups, self.group_ok,
            np.asarray(self.no_repeat))


def tone_masks(vocab: text.Vocab, size: int) -> dict:
  """{'p'|'z'|'*': bool [size]}: vocabulary characters of that tone in the dictionary."""
  tones = pingshui.dictionary()[0]
  out = {t: np.zeros(size, bool) for t in "pz*"}
  for i, ch in enumerate(vocab.chars):
    if ch in tones and text.is_han(ch):
      out["*"][vocab.char0 + i] = True
      for t in tones[ch]:
        out[t][vocab.char0 + i] = True
  return out


def group_masks(vocab: text.Vocab, size: int) -> dict:
  """{group name: bool [size]}: the vocabulary's 平聲 characters of each group."""
  groups = pingshui.dictionary()[1]
  out = {}
  for i, ch in enumerate(vocab.chars):
    for g in groups.get(ch, ()):
      out.setdefault(g, np.zeros(size, bool))[vocab.char0 + i] = True
  return out


def _fixed(form: str, acrostic: str, prime: str) -> dict:
  """{verse: {position: char}} fixed by the acrostic and the prime."""
  verses, n = pingshui.SHAPES[form]
  out = {v: {} for v in range(verses)}
  for v, ch in enumerate(acrostic):
    out[v][0] = ch
  for t, ch in enumerate(prime):
    v, i = divmod(t, n + 1)
    if i < n:
      out[v][i] = ch
  return out


def _rhyme_positions(kind: str, form: str, steps: int, primed: int) -> np.ndarray:
  """The even verses' ends, and the first verse's when the template rhymes there (首句入韻)
  and the prime does not fix it (the rule allows a first verse that does not rhyme)."""
  verses, n = pingshui.SHAPES[form]
  pos = np.zeros(steps, bool)
  for v in range(verses):
    if v % 2 == 1 or (v == 0 and pingshui.line_pattern(kind, n)[-1] == "p" and primed < n):
      pos[v * (n + 1) + n - 1] = True
  return pos


def _template_table(vocab, form, kind, steps, size, base, fixed, masks):
  """bool [steps, V] of one template, or None when the fixed characters cannot fit it."""
  verses, n = pingshui.SHAPES[form]
  table = base.copy()
  for v, kind_v in enumerate(pingshui.template(kind, verses)):
    rules = line_rules(kind_v, n, fixed[v])
    if rules is None:
      return None
    for i, r in enumerate(rules):
      if i not in fixed[v]:
        table[v * (n + 1) + i] &= masks[r]
  return table


def _describe(form, acrostic, prime, name):
  what = " and ".join(x for x in (acrostic and f"--acrostic {acrostic!r}",
                                  prime and f"--prime {prime!r}") if x)
  return f"no {name or 'regulated'} template of a {form} fits {what or 'the request'}"


def _padded(table: np.ndarray, steps: int) -> np.ndarray:
  """[T, V] rows of a table, then rows allowing only PAD (after the poem's EOS)."""
  out = np.zeros((steps,) + table.shape[1:], bool)
  out[:, text.PAD] = True
  out[:len(table)] = table
  return out


@functools.lru_cache(maxsize=32)
def build(vocab: text.Vocab, form: str, size: int, template: str = "", group: str = "",
          acrostic: str = "", prime: str = "", min_group: int = 20, steps: int = 0) -> Tables:
  """The strict tables of a request, `steps` (>= the form's length + EOS) rows each;
  ConfigError when nothing can meet the request."""
  if form not in pingshui.SHAPES:
    raise ConfigError(f"--strict needs a regulated form (wujue, qijue, wulu, qilu), got {form!r}")
  name = canonical_template(template)
  for what, chars in (("--acrostic", acrostic), ("--prime", prime)):
    unknown = [c for c in chars if text.is_han(c) and c not in pingshui.dictionary()[0]]
    if unknown:
      raise ConfigError(f"{what} {chars!r}: {unknown[0]!r} is not in the 平水韻 dictionary "
                        "(its tone is unknown), so --strict cannot place it")
  length = len(text.template(form)) + 1
  base = text.constraint_table(vocab, form, length, acrostic, prime, size)
  masks, fixed = tone_masks(vocab, size), _fixed(form, acrostic, prime)
  wanted = kinds_for(form, name)
  tables = {k: _template_table(vocab, form, k, length, size, base, fixed, masks) if k in wanted
            else None for k in "ABCD"}
  if all(t is None for t in tables.values()):
    raise ConfigError(_describe(form, acrostic, prime, name) + " (the tones of its fixed "
                      "characters contradict the template's)")
  for k, t in tables.items():
    if t is not None and not t.any(-1).all():
      raise ConfigError(f"the model's vocabulary has no character for position "
                        f"{int(np.argmin(t.any(-1))) + 1} of the "
                        f"{pingshui.template_name(k, pingshui.SHAPES[form][1])} template")
  steps = max(steps, length)
  groups, group_ok = _groups(vocab, form, size, group, prime, min_group)
  return Tables(
      tone=np.stack([_padded(base if t is None else t, steps) for t in tables.values()]),
      ok=np.asarray([t is not None for t in tables.values()]),
      rhyme_pos=np.stack([_rhyme_positions(k, form, steps, len(prime)) for k in "ABCD"]),
      groups=groups, group_ok=group_ok, no_repeat=True)


def free(vocab: text.Vocab, form: str, size: int, steps: int, *, constrained: bool = True,
         acrostic: str = "", prime: str = "", rhyme: bool = False) -> Tables:
  """Tables of the other decodings in the same shapes: the form's template (constrained;
  `rhyme`: the even verses end in one group of >= 20 characters, fewer for a tiny
  vocabulary), or any character or EOS at every step (not constrained)."""
  if constrained:
    length = len(text.template(form)) + 1
    table = _padded(text.constraint_table(vocab, form, length, acrostic, prime, size), steps)
  else:
    table = np.zeros((steps, size), bool)
    table[:, vocab.char0:vocab.size] = True
    table[:, text.EOS] = True
  tone = np.broadcast_to(table, (4,) + table.shape)
  masks = group_masks(vocab, size)
  groups = np.stack([masks.get(g, np.zeros(size, bool)) for g in pingshui.level_groups()])
  pos = np.zeros((4, steps), bool)
  if rhyme and constrained:
    verses, n = pingshui.SHAPES[form]
    pos[:, [v * (n + 1) + n - 1 for v in range(1, verses, 2)]] = True
    pos[:, :len(prime)] = False
    group_ok = groups.sum(-1) >= max(2, min(20, len(vocab.chars) // 100))
    if not group_ok.any():
      raise ConfigError("--rhyme: the vocabulary has no 平聲 rhyme group of level-tone characters")
  else:
    group_ok = np.arange(len(groups)) == 0
  return Tables(np.ascontiguousarray(tone), np.asarray([True, False, False, False]), pos,
                groups, group_ok, no_repeat=False)


def _groups(vocab, form, size, group, prime, min_group):
  """(bool [30, V] every 平聲 group's characters, bool [30] those a poem may rhyme in)."""
  masks = group_masks(vocab, size)
  names = pingshui.level_groups()
  groups = np.stack([masks.get(g, np.zeros(size, bool)) for g in names])
  counts = groups.sum(-1)
  verses, n = pingshui.SHAPES[form]
  need = verses // 2 + 2              # more characters than rhyme positions
  if group:
    if group not in names:
      raise ConfigError(f"unknown rhyme group {group!r}; the 平聲 groups are "
                        f"{', '.join(names[:3])} ... {names[-1]}")
    if counts[names.index(group)] < need:
      raise ConfigError(f"rhyme group {group!r} has {int(counts[names.index(group)])} "
                        f"characters in the model's vocabulary; a {form} needs >= {need}")
    ok = np.asarray([g == group for g in names])
  else:
    ok = counts >= max(need, min(min_group, len(vocab.chars) // 100))
  ends = [prime[t] for t in range(len(prime)) if t % (n + 1) == n - 1 and (t // (n + 1)) % 2 == 1]
  if len(set(ends)) < len(ends):
    raise ConfigError(f"--prime {prime!r} repeats a rhyme character (重韻)")
  for c in ends:
    ok &= groups[:, vocab.index[c]]
  if not ok.any():
    raise ConfigError(f"no 平聲 rhyme group{' ' + group if group else ''} fits"
                      + (f" the rhyme characters {''.join(ends)!r} of --prime" if ends else
                         " the model's vocabulary"))
  return groups, ok


def tables_for(vocab: text.Vocab, size: int, steps: int, *, form: str, strict_: bool,
               constrained: bool = True, template: str = "", rhyme_group: str = "",
               acrostic: str = "", prime: str = "", rhyme: bool = False,
               max_chars: int = 64) -> Tables:
  """The masks of a request, `steps` rows (0: as many as the form needs): strict, the
  form's template, or open (not constrained: poems of up to `max_chars` characters)."""
  if strict_:
    return build(vocab, form, size, template, rhyme_group, acrostic, prime, steps=steps)
  length = len(text.template(form)) + 1 if constrained else max_chars + 1
  return free(vocab, form, size, max(steps, length), constrained=constrained,
              acrostic=acrostic, prime=prime, rhyme=rhyme)


def check_request(vocab: text.Vocab, form: str, acrostic: str, prime: str,
                  constrained: bool = True) -> None:
  """ConfigError for an acrostic or prime the vocabulary or the form cannot honour."""
  for what, chars in (("--acrostic", acrostic), ("--prime", prime)):
    missing = vocab.missing(chars)
    if missing:
      raise ConfigError(f"{what} {chars!r}: {''.join(missing)!r} not in the model's vocabulary")
  if prime and acrostic and form in text.SHAPES:
    for k, i in enumerate(text.verse_starts(form)[:len(acrostic)]):
      if i < len(prime) and prime[i] != acrostic[k]:
        raise ConfigError(f"--prime {prime!r} breaks --acrostic {acrostic!r}: verse "
                          f"{k + 1} must begin with {acrostic[k]!r}")
  if prime and constrained:
    tpl = text.template(form)
    bad = [i for i, ch in enumerate(prime)
           if i >= len(tpl) or (tpl[i] == "c") != text.is_han(ch) or (tpl[i] != "c" and tpl[i] != ch)]
    if bad:
      raise ConfigError(f"--prime {prime!r} does not fit a {form} ({tpl}) at character {bad[0] + 1}")


class Constraint:
  """The per-step masks of a batch of poems (the sampler's constraint protocol:
  init(batch) -> state, mask(state, t) -> bool [B, V], update(state, tok, t) -> state), from
  the arrays of a Tables (jax arrays: they may be a traced function's inputs). `kind` and
  `group` [B]: each poem's template and rhyme group; `han` bool [V]: the characters that may
  not repeat. After EOS a poem writes PAD."""

  def __init__(self, tone, rhyme_pos, groups, no_repeat, kind, group, han):
    self.tone, self.rhyme_pos, self.groups = tone, rhyme_pos, groups
    self.no_repeat, self.kind, self.group, self.han = no_repeat, kind, group, jnp.asarray(han)

  def init(self, b):
    v = self.tone.shape[-1]
    return jnp.zeros((b, v), bool), jnp.zeros((b, v), bool), jnp.zeros((b,), bool)

  def mask(self, state, t):
    used, rhymed, ended = state
    at_rhyme = self.rhyme_pos[self.kind, t][:, None]
    base = self.tone[self.kind, t] & jnp.where(at_rhyme, self.groups[self.group], True)
    fresh = base & ~(used & self.han)
    fallback = jnp.where(at_rhyme, base & ~rhymed, base)
    out = jnp.where(self.no_repeat & fresh.any(-1, keepdims=True), fresh,
                    jnp.where(self.no_repeat, fallback, base))
    only_pad = jnp.arange(out.shape[-1]) == text.PAD
    return jnp.where(ended[:, None], only_pad, out)

  def update(self, state, tok, t):
    used, rhymed, ended = state
    hot = jax.nn.one_hot(tok, used.shape[-1], dtype=bool)
    return (used | hot, rhymed | (hot & self.rhyme_pos[self.kind, t][:, None]),
            ended | (tok == text.EOS) | (tok == text.PAD))


def draw(ok, group_ok, key, num: int):
  """(kind, group) [num] each: every poem's template and rhyme group, drawn uniformly among
  the allowed ones from `key` and the row's index (so a row does not depend on `num`)."""
  rows = jnp.arange(num)

  def pick(salt, allowed):
    logits = jnp.where(allowed, 0.0, -jnp.inf)
    return jax.vmap(lambda r: jax.random.categorical(
        jax.random.fold_in(jax.random.fold_in(key, salt), r), logits))(rows).astype(jnp.int32)
  return pick(0, ok), pick(1, group_ok)


def constrained_sample(model, prompt, key, arrays, han, *, temperature, top_p, prefix=None):
  """tokens [B, T]: one jitted KV-cache decode under a Tables' `arrays` (what both
  `run.py sample` and the exported poetry sampler run; per-step keys are folded from `key`,
  so decoding more steps than a form needs leaves its poem unchanged)."""
  tone, ok, rhyme_pos, groups, group_ok, no_repeat = arrays
  kind, group = draw(ok, group_ok, jax.random.fold_in(key, 7), prompt.shape[0])
  constraint = Constraint(tone, rhyme_pos, groups, no_repeat, kind, group, han)
  return sampling.sample_cached(model, prompt, tone.shape[1], key, temperature=temperature,
                                top_p=top_p, prefix=prefix, constraint=constraint,
                                fold_keys=True)
