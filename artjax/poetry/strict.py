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
  tone: np.ndarray        # bool [K, steps, V]
  rhyme_pos: np.ndarray   # bool [K, steps]
  groups: np.ndarray      # bool [G, V]
  kinds: tuple            # the K templates' first-verse types
  group_names: tuple      # the G groups


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


@functools.lru_cache(maxsize=32)
def build(vocab: text.Vocab, form: str, size: int, template: str = "", group: str = "",
          acrostic: str = "", prime: str = "", min_group: int = 20) -> Tables:
  """The strict tables of a request (ConfigError when nothing can meet it)."""
  if form not in pingshui.SHAPES:
    raise ConfigError(f"--strict needs a regulated form (wujue, qijue, wulu, qilu), got {form!r}")
  name = canonical_template(template)
  for what, chars in (("--acrostic", acrostic), ("--prime", prime)):
    unknown = [c for c in chars if text.is_han(c) and c not in pingshui.dictionary()[0]]
    if unknown:
      raise ConfigError(f"{what} {chars!r}: {unknown[0]!r} is not in the 平水韻 dictionary "
                        "(its tone is unknown), so --strict cannot place it")
  steps = len(text.template(form)) + 1
  base = text.constraint_table(vocab, form, steps, acrostic, prime, size)
  masks, fixed = tone_masks(vocab, size), _fixed(form, acrostic, prime)
  tables = [(k, _template_table(vocab, form, k, steps, size, base, fixed, masks))
            for k in kinds_for(form, name)]
  tables = [(k, t) for k, t in tables if t is not None]
  if not tables:
    raise ConfigError(_describe(form, acrostic, prime, name) + " (the tones of its fixed "
                      "characters contradict the template's)")
  groups = _groups(vocab, form, size, group, prime, min_group, steps)
  rpos = np.stack([_rhyme_positions(k, form, steps, len(prime)) for k, _ in tables])
  tone = np.stack([t for _, t in tables])
  empty = ~tone.any(-1)
  if empty.any():
    k, t = map(int, np.argwhere(empty)[0])
    raise ConfigError(f"the model's vocabulary has no character for position {t + 1} of the "
                      f"{pingshui.template_name(tables[k][0], pingshui.SHAPES[form][1])} template")
  return Tables(tone, rpos, np.stack([m for _, m in groups]), tuple(k for k, _ in tables),
                tuple(g for g, _ in groups))


def _groups(vocab, form, size, group, prime, min_group, steps):
  """[(name, bool [V])] of the rhyme groups a poem may use."""
  masks = group_masks(vocab, size)
  verses, n = pingshui.SHAPES[form]
  need = verses // 2 + 2              # more characters than rhyme positions
  if group:
    if group not in pingshui.level_groups():
      raise ConfigError(f"unknown rhyme group {group!r}; the 平聲 groups are "
                        f"{', '.join(pingshui.level_groups()[:3])} ... {pingshui.level_groups()[-1]}")
    if masks.get(group, np.zeros(1)).sum() < need:
      raise ConfigError(f"rhyme group {group!r} has {int(masks.get(group, np.zeros(1)).sum())} "
                        f"characters in the model's vocabulary; a {form} needs >= {need}")
    out = [(group, masks[group])]
  else:
    out = [(g, m) for g, m in sorted(masks.items(), key=lambda kv: pingshui.group_order(kv[0]))
           if m.sum() >= max(need, min(min_group, len(vocab.chars) // 100))]
  ends = [prime[t] for t in range(len(prime)) if t % (n + 1) == n - 1 and (t // (n + 1)) % 2 == 1]
  if len(set(ends)) < len(ends):
    raise ConfigError(f"--prime {prime!r} repeats a rhyme character (重韻)")
  out = [(g, m) for g, m in out if all(m[vocab.index[c]] for c in ends)]
  if not out:
    raise ConfigError(f"no 平聲 rhyme group{' ' + group if group else ''} fits"
                      + (f" the rhyme characters {''.join(ends)!r} of --prime" if ends else
                         " the model's vocabulary"))
  return out


class Constraint:
  """The per-step masks of a batch of strict poems (the sampler's constraint protocol:
  init(batch) -> state, mask(state, t) -> bool [B, V], update(state, tok, t) -> state).
  `kind` and `group` [B]: each poem's template and rhyme group (indices into the tables)."""

  def __init__(self, tables: Tables, kind, group, han):
    self.tone = jnp.asarray(tables.tone)
    self.rhyme_pos = jnp.asarray(tables.rhyme_pos)
    self.groups = jnp.asarray(tables.groups)
    self.kind, self.group, self.han = kind, group, jnp.asarray(han)

  def init(self, b):
    v = self.tone.shape[-1]
    return jnp.zeros((b, v), bool), jnp.zeros((b, v), bool)

  def mask(self, state, t):
    used, rhymed = state
    at_rhyme = self.rhyme_pos[self.kind, t][:, None]
    base = self.tone[self.kind, t] & jnp.where(at_rhyme, self.groups[self.group], True)
    fresh = base & ~(used & self.han)
    fallback = jnp.where(at_rhyme, base & ~rhymed, base)
    return jnp.where(fresh.any(-1, keepdims=True), fresh, fallback)

  def update(self, state, tok, t):
    used, rhymed = state
    hot = jax.nn.one_hot(tok, used.shape[-1], dtype=bool)
    return used | hot, rhymed | (hot & self.rhyme_pos[self.kind, t][:, None])


def draw(tables: Tables, key, num: int):
  """(kind, group) [num] each: every poem's template and rhyme group, from `key`."""
  k1, k2 = jax.random.split(key)
  return (jax.random.randint(k1, (num,), 0, len(tables.kinds)),
          jax.random.randint(k2, (num,), 0, len(tables.group_names)))
