"""Token n-gram baselines for language models of any vocabulary (characters of poems, MIDI
tokens): an add-one unigram and interpolated Kneser-Ney, in bits per scored token, computed
on the same tokens the Transformer is scored on."""

from __future__ import annotations

import collections
import math

import numpy as np


def unigram_bits(train_seqs, test_seqs, vocab_size: int) -> float:
  """Bits per scored token of an add-one unigram model (same tokens as the Transformer)."""
  counts = np.bincount(np.concatenate(train_seqs), minlength=vocab_size).astype(np.float64) + 1
  logp = np.log2(counts / counts.sum())
  allt = np.concatenate(test_seqs)
  return float(-logp[allt].mean())


class KneserNey:
  """Interpolated Kneser-Ney over token sequences (Chen & Goodman 1998): order n, absolute
  discount d; the highest order uses counts, every lower order continuation counts (in how
  many distinct contexts a gram follows), the lowest add-one smoothed over the vocabulary."""

  def __init__(self, seqs, order: int = 4, discount: float = 0.75, vocab_size: int = 0):
    self.n, self.d, self.v = order, discount, vocab_size
    raw = collections.Counter()
    for s in seqs:
      s = (-1,) * (order - 1) + tuple(int(t) for t in s)
      for i in range(order - 1, len(s)):
        raw[s[i - order + 1:i + 1]] += 1
    # counts[k]: grams of length k + 1 (context length k)
    self.counts = [collections.Counter() for _ in range(order)]
    self.counts[order - 1] = raw
    for k in range(order - 2, -1, -1):
      for gram in self.counts[k + 1]:
        self.counts[k][gram[1:]] += 1          # continuation count of the shorter gram
    self.total0 = sum(self.counts[0].values())
    self.ctx_total = [collections.Counter() for _ in range(order)]
    self.ctx_types = [collections.Counter() for _ in range(order)]
    for k in range(1, order):
      for gram, c in self.counts[k].items():
        self.ctx_total[k][gram[:-1]] += c
        self.ctx_types[k][gram[:-1]] += 1

  def prob(self, ctx: tuple, tok: int) -> float:
    p = (self.counts[0].get((tok,), 0) + 1.0) / (self.total0 + self.v)
    for k in range(1, self.n):
      c = ctx[len(ctx) - k:]
      total = self.ctx_total[k].get(c, 0)
      if not total:
        continue
      count = self.counts[k].get(c + (tok,), 0)
      p = max(count - self.d, 0) / total + self.d * self.ctx_types[k][c] / total * p
    return p

  def bits(self, seqs, scored_from: int) -> float:
    """Bits per token over positions >= scored_from of each sequence."""
    total, n = 0.0, 0
    for s in seqs:
      s = (-1,) * (self.n - 1) + tuple(int(t) for t in s)
      for i in range(self.n - 1 + scored_from, len(s)):
        total -= math.log2(self.prob(s[i - self.n + 1:i], s[i]))
        n += 1
    return total / max(n, 1)
