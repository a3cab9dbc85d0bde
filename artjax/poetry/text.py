"""Characters as tokens, control tokens, and the form templates of constrained decoding.

A poem is the sequence  BOS FORM AUTHOR c_1 ... c_n EOS  (then PAD): FORM is one of the five
form tokens (artjax.poetry.data.poetry.FORMS), AUTHOR one of the most prolific poets' tokens or
ANY_AUTHOR; c_i are the body's characters, punctuation included. Characters seen fewer
than `min_count` times in the training split map to UNK. A model with a plan
(`data.rhyme_plan`) reads two more tokens before the body: GROUP, the 平水韻 level-tone
group the poem rhymes in (or "no group"), and KIND, the tonal template it keeps (or "none")
(tokens after the characters: `plan_tokens`); the model predicts them like any other
token, so its samples choose their rhyme and their template once, at the start.

A form's template fixes where the verses' characters and punctuation go: wujue is
"ccccc，ccccc。ccccc，ccccc。" then EOS. `constraint_table` turns a template (plus an
acrostic and a prime) into a [T, V] table of the tokens allowed at each step, which the
sampler applies as a mask: the form is guaranteed, not hoped for.
"""

from __future__ import annotations

import collections
import dataclasses
import functools

import numpy as np

PAD, BOS, EOS, UNK, ANY_AUTHOR = 0, 1, 2, 3, 4
FORMS = ("wujue", "qijue", "wulu", "qilu", "other")
FORM0 = 5                       # FORM tokens 5..9
AUTHOR0 = FORM0 + len(FORMS)    # author tokens from 10
PREFIX = 3                      # BOS FORM AUTHOR
SHAPES = {"wujue": (4, 5), "qijue": (4, 7), "wulu": (8, 5), "qilu": (8, 7)}
PUNCT = "，。？！；：、"
COMMA, PERIOD = "，", "。"


@dataclasses.dataclass(frozen=True)
class Vocab:
  chars: tuple           # index i -> token AUTHOR0 + len(authors) + i
  authors: tuple

  @property
  def char0(self) -> int:
    return AUTHOR0 + len(self.authors)

  @property
  def size(self) -> int:
    return self.char0 + len(self.chars)

  @functools.cached_property
  def index(self) -> dict:
    return {c: self.char0 + i for i, c in enumerate(self.chars)}

  def encode(self, text: str) -> np.ndarray:
    return np.asarray([self.index.get(c, UNK) for c in text], np.int32)

  def decode(self, ids) -> str:
    out = []
    for t in np.asarray(ids).tolist():
      if t in (EOS, PAD):
        break
      out.append(self.chars[t - self.char0] if t >= self.char0 else ("□" if t == UNK else ""))
    return "".join(out)

  def author_token(self, author: str) -> int:
    return AUTHOR0 + self.authors.index(author) if author in self.authors else ANY_AUTHOR

  def missing(self, text: str) -> list:
    return [c for c in dict.fromkeys(text) if c not in self.index]


PLAN_GROUPS = 31               # the 30 平聲 groups of the 平水韻, then "no group"
PLAN_KINDS = 5                 # the 4 tonal templates (first verse A-D), then "none"
PLAN_TOKENS = PLAN_GROUPS + PLAN_KINDS


def plan_tokens(vocab: Vocab, group_index: int | None, kind_index: int | None) -> list[int]:
  """The plan of a poem: its rhyme group's token (level-tone group 0..29, or "no group")
  and its tonal template's (0..3 for A-D, or "none"), after the characters."""
  g = PLAN_GROUPS - 1 if group_index is None else group_index
  k = PLAN_KINDS - 1 if kind_index is None else kind_index
  return [vocab.size + g, vocab.size + PLAN_GROUPS + k]


def build_vocab(bodies, authors, min_count: int, num_authors: int, max_chars: int) -> Vocab:
  """The `max_chars` most frequent characters seen >= `min_count` times, and the
  `num_authors` poets with the most poems."""
  counts = collections.Counter(c for b in bodies for c in b)
  top = [c for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count]
  chars = tuple(sorted(top[:max_chars]))
  by_poems = collections.Counter(a for a in authors if a)
  poets = tuple(a for a, _ in sorted(by_poems.items(), key=lambda kv: (-kv[1], kv[0]))[:num_authors])
  return Vocab(chars, poets)


def sequence(vocab: Vocab, body: str, form: int, author_token: int, length: int,
             plan: list | None = None) -> np.ndarray:
  """[length] int32: BOS FORM AUTHOR [GROUP KIND] chars EOS PAD... (`plan_tokens`)"""
  head = [BOS, FORM0 + form, author_token] + list(plan or [])
  ids = np.concatenate([head, vocab.encode(body), [EOS]])
  out = np.full(length, PAD, np.int32)
  out[:min(len(ids), length)] = ids[:length]
  return out


def is_han(ch: str) -> bool:
  """A CJK ideograph (what a verse's character slot may hold; not punctuation or brackets)."""
  o = ord(ch)
  return 0x3400 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x3FFFF


def template(form: str) -> str:
  """'c' for a verse character, punctuation where it goes: e.g. ccccc，ccccc。... (no EOS)."""
  verses, n = SHAPES[form]
  return "".join("c" * n + (COMMA if i % 2 == 0 else PERIOD) for i in range(verses))


def verse_starts(form: str) -> list[int]:
  verses, n = SHAPES[form]
  return [i * (n + 1) for i in range(verses)]


def constraint_table(vocab: Vocab, form: str, steps: int, acrostic: str = "", prime: str = "",
                     size: int = 0):
  """bool [steps, size or V]: tokens allowed at each sampled position of a `form` poem."""
  tpl = template(form)
  v = max(size, vocab.size)
  chars = np.zeros(v, bool)
  chars[vocab.char0:vocab.size] = [is_han(c) for c in vocab.chars]
  table = np.zeros((steps, v), bool)
  table[:, PAD] = True
  for t, slot in enumerate(tpl[:steps]):
    table[t] = chars if slot == "c" else np.eye(v, dtype=bool)[vocab.index[slot]]
  if len(tpl) < steps:
    table[len(tpl)] = np.eye(v, dtype=bool)[EOS]
  forced = {s: c for s, c in zip(verse_starts(form), acrostic)}
  forced.update({i: c for i, c in enumerate(prime)})
  for t, c in forced.items():
    table[t] = np.eye(v, dtype=bool)[vocab.index[c]]
  return table
