"""The PyTorch peer of the poetry Transformer: the music peer's model (same architecture:
pre-norm, rotary, GELU MLP, untied head) with the poetry vocabulary, AdamW with the same
decay split, schedule, clipping and batches drawn the same way (random poems, the author token
dropped to "any" with model.cond_dropout), loss over the characters and EOS."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.peers.torch_music_peer import PeerBase, Transformer

from artjax.poetry import text


class TorchPoetryLM(PeerBase):
  def __init__(self, tokens: np.ndarray, vocab_size: int, cfg, threads=None, seed=0):
    if threads:
      torch.set_num_threads(threads)
    torch.manual_seed(seed)
    m = cfg.model
    self.model = Transformer(vocab_size, m.d_model, m.num_layers, m.num_heads, m.d_ff, m.dropout)
    self.setup_optimizer(cfg)
    self.tokens, self.batch = tokens, cfg.train.batch_size
    self.drop = m.cond_dropout
    self.rng = np.random.default_rng(seed)
    self.autocast = cfg.train.dtype == "bf16"

  def make_batch(self):
    seq = self.tokens[self.rng.integers(0, len(self.tokens), self.batch)].copy()
    seq[self.rng.random(self.batch) < self.drop, 2] = text.ANY_AUTHOR
    return torch.from_numpy(seq.astype(np.int64))

  def step(self):
    seq = self.make_batch()
    inputs, targets = seq[:, :-1], seq[:, 1:]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
      logits = self.model(inputs)
    scored = (targets != text.PAD) & (torch.arange(targets.shape[1]) >= text.PREFIX - 1)
    return self.update(F.cross_entropy(logits.float()[scored], targets[scored]))
