"""The Music Transformer in idiomatic PyTorch eager: the peer of artjax's music task in
benchmarks/music_throughput.py. Same architecture (pre-norm, rotary positions, GELU MLP,
LayerNorm, untied head), same loss (cross-entropy under the encoding's allowed-next mask,
keys and end-of-frame scored), AdamW with weight decay on matrices, global-norm clipping, the
config's learning-rate schedule (warmup + cosine, the same optax schedule evaluated per step),
dropout, and batches from the same distribution as artjax's `MusicTask.batch`: random chorales,
random frame-aligned windows (`data.start_prob` of them at the first frame), random
transposition, the mode token withheld (NOMODE) with probability `model.cond_dropout`."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from artjax.engine import optim
from artjax.music import encoding as enc

NUM_KEYS, EOF = enc.NUM_KEYS, enc.EOF


def rope(x, pos):   # x [B, H, L, D]
  half = x.shape[-1] // 2
  freq = 1.0 / (10000 ** (torch.arange(half, dtype=torch.float32) / half))
  ang = pos[:, None].float() * freq
  cos, sin = ang.cos(), ang.sin()
  x1, x2 = x[..., :half], x[..., half:]
  return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


class Block(nn.Module):
  def __init__(self, d, h, ff, dropout):
    super().__init__()
    self.h = h
    self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
    self.qkv = nn.Linear(d, 3 * d, bias=False)
    self.out = nn.Linear(d, d, bias=False)
    self.mlp = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))
    self.drop = nn.Dropout(dropout)

  def forward(self, x, pos):
    b, t, d = x.shape
    q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
    y = F.scaled_dot_product_attention(rope(q, pos), rope(k, pos), v, is_causal=True)
    x = x + self.drop(self.out(y.transpose(1, 2).reshape(b, t, d)))
    return x + self.drop(self.mlp(self.norm2(x)))


class Transformer(nn.Module):
  def __init__(self, vocab, d, layers, heads, ff, dropout):
    super().__init__()
    self.embed = nn.Embedding(vocab, d)
    self.drop = nn.Dropout(dropout)
    self.blocks = nn.ModuleList([Block(d, heads, ff, dropout) for _ in range(layers)])
    self.norm = nn.LayerNorm(d)
    self.head = nn.Linear(d, vocab)

  def forward(self, tokens):
    pos = torch.arange(tokens.shape[1])
    x = self.drop(self.embed(tokens))
    for blk in self.blocks:
      x = blk(x, pos)
    return self.head(self.norm(x))


class PeerBase:
  """What every PyTorch peer shares: AdamW with decay on matrices only, the config's
  learning-rate schedule, clipping, the update and the timing."""

  def setup_optimizer(self, cfg):
    o = cfg.optim
    decay = [p for p in self.model.parameters() if p.ndim >= 2]
    no_decay = [p for p in self.model.parameters() if p.ndim < 2]
    self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}],
                                 lr=o.lr, betas=(o.b1, o.b2), eps=o.eps)
    self.clip = o.clip_norm
    self.schedule = optim.learning_rate_schedule(o, cfg.train.steps)
    self.t = 0

  def update(self, loss):
    lr = float(self.schedule(self.t)) if callable(self.schedule) else self.schedule
    for group in self.opt.param_groups:
      group["lr"] = lr
    self.t += 1
    self.opt.zero_grad(set_to_none=True)
    loss.backward()
    if self.clip:
      torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
    self.opt.step()
    return loss

  def run(self, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
      loss = self.step()
    float(loss.detach())
    return time.perf_counter() - t


class TorchMusicLM(PeerBase):
  def __init__(self, train: dict, cfg, threads=None, seed=0):
    if threads:
      torch.set_num_threads(threads)
    torch.manual_seed(seed)
    m = cfg.model
    self.vocab = enc.VOCAB
    self.model = Transformer(self.vocab, m.d_model, m.num_layers, m.num_heads, m.d_ff, m.dropout)
    self.setup_optimizer(cfg)
    self.start_prob, self.cond_dropout = cfg.data.start_prob, m.cond_dropout
    self.train_data = train
    self.batch, self.window, self.transpose = cfg.train.batch_size, cfg.data.window, cfg.data.transpose
    self.conditional = cfg.model.conditional
    self.rng = np.random.default_rng(seed)
    vocab = torch.arange(self.vocab)
    self.vocab_ids = vocab
    # train.dtype=bf16: torch's own mixed precision (autocast: bf16 matmuls and attention)
    self.autocast = cfg.train.get("dtype", "fp32") == "bf16"

  def make_batch(self):
    d, b, w = self.train_data, self.batch, self.window
    idx = self.rng.integers(0, len(d["tokens"]), b)
    f = np.floor(self.rng.random(b) * d["num_frames"][idx]).astype(np.int64)
    f = np.where(self.rng.random(b) < self.start_prob, 0, f)
    start = d["starts"][idx, f]
    toks = np.take_along_axis(d["tokens"][idx], start[:, None] + np.arange(w)[None], 1)
    shift = np.clip(self.rng.integers(-self.transpose, self.transpose + 1, b),
                    -d["low"][idx], NUM_KEYS - 1 - d["high"][idx])
    toks = np.where(toks < NUM_KEYS, toks + shift[:, None], toks)
    head = [np.full((b, 1), enc.BOS)]
    if self.conditional:
      mode = np.asarray(enc.MODE_TOKENS)[d["mode"][idx]]
      mode = np.where(self.rng.random(b) < self.cond_dropout, enc.NOMODE, mode)
      head.append(mode[:, None])
    return torch.from_numpy(np.concatenate(head + [toks], 1).astype(np.int64))

  def step(self):
    seq = self.make_batch()
    inputs, targets = seq[:, :-1], seq[:, 1:]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
      logits = self.model(inputs)
    logits = logits.float()
    last = torch.where(inputs < NUM_KEYS, inputs, -1)[..., None]
    allowed = ((self.vocab_ids < NUM_KEYS) & (self.vocab_ids > last)) | (self.vocab_ids == EOF)
    logits = logits.masked_fill(~allowed, -1e30)
    scored = targets <= EOF
    return self.update(F.cross_entropy(logits[scored], targets[scored]))


