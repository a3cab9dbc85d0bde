"""A decoder-only causal Transformer language model (Flax NNX): pre-norm, rotary positions.

Pure building blocks for the functional style the loop uses (`nnx.split` once, then
`nnx.merge` inside jitted code):

* `model(tokens, train=, rng=, prefix=)` -> logits [B, L, V] for whole sequences
  (causal self-attention; dropout on embeddings, attention output and MLP output);
* `model.decode(tokens, cache, index, prefix=)` -> (logits, cache): the same network on
  `tokens` [B, T] at positions index..index+T-1, reading and writing a KV cache
  (`init_cache`). One code path serves the prompt (T = prompt length) and each sampled
  token (T = 1).
* `prefix`: prefix-tuning (Li & Liang 2021) -- per layer, P learned key/value vectors that
  every query may attend to ({"k","v"}: [layers, P, heads, head_dim]; see artjax.engine.peft).
  Prefix vectors carry no position; tokens keep positions 0, 1, ...
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

from artjax.nn.precision import Embed, Linear, bf16_bmm


def rope(x, positions, base: float = 10000.0):
  """Rotary position embedding of x [B, L, H, D] at integer positions [L] or [B, L]."""
  half = x.shape[-1] // 2
  freq = 1.0 / (base ** (jnp.arange(half, dtype=jnp.float32) / half))
  ang = positions.astype(jnp.float32)[..., None] * freq
  cos, sin = jnp.cos(ang)[..., None, :], jnp.sin(ang)[..., None, :]
  if cos.ndim == 3:          # positions [L]: broadcast over the batch
    cos, sin = cos[None], sin[None]
  x1, x2 = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
  return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).astype(x.dtype)


def _dropout(x, rate, rng):
  if rng is None or rate <= 0.0:
    return x
  keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


class Attention(nnx.Module):
  def __init__(self, d_model: int, num_heads: int, *, rngs: nnx.Rngs):
    if d_model % num_heads:
      raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
    self.num_heads = num_heads
    self.qkv = Linear(d_model, 3 * d_model, use_bias=False, axes=("embed", "heads"), rngs=rngs)
    self.out = Linear(d_model, d_model, use_bias=False, axes=("heads", "embed"), rngs=rngs)

  def __call__(self, x, q_pos, mask, cache=None, index=None, prefix=None, chunks: int = 1,
               pairs: int = 0):
    """x [B, T, D]; q_pos [T]; mask [T, S] bool over key slots (cache or sequence).

    `chunks` > 1 (full causal sequences only): queries in that many blocks, block i
    attending to keys up to its own end, which skips the masked upper triangle's work.
    `pairs` > 0 (full causal sequences, fp32 only; bf16 runs its batched bf16 products,
    faster here): `blocked_attention`, that many (sequence, head) pairs per loop step.
    Returns (y, new_cache)."""
    b, t, d = x.shape
    h = self.num_heads
    q, k, v = jnp.split(self.qkv(x).reshape(b, t, 3 * h, d // h), 3, axis=2)
    q, k = rope(q, q_pos), rope(k, q_pos)
    if cache is not None:
      k = jax.lax.dynamic_update_slice(cache["k"], k.astype(cache["k"].dtype), (0, index, 0, 0))
      v = jax.lax.dynamic_update_slice(cache["v"], v.astype(cache["v"].dtype), (0, index, 0, 0))
      cache = {"k": k, "v": v}
    if prefix is not None:
      prefix = tuple(jnp.broadcast_to(p.astype(k.dtype)[None], (b,) + p.shape) for p in prefix)
    # bf16 compute (parameters cast to bf16): attention products in bf16, fp32 accumulation
    bf16 = self.qkv.kernel.dtype == jnp.bfloat16
    if cache is None and pairs > 0 and not bf16:
      p_len = 0
      if prefix is not None:
        p_len = prefix[0].shape[1]
        k, v = jnp.concatenate([prefix[0], k], 1), jnp.concatenate([prefix[1], v], 1)
      group = max(g for g in range(1, pairs + 1) if (b * h) % g == 0)
      y = blocked_attention(q, k, v, p_len, chunks, group)
    elif cache is None and chunks > 1:
      y = jnp.concatenate([_attend(q[:, s0:s1], k[:, :e], v[:, :e], m, prefix, bf16)
                           for s0, s1, e, m in _chunk_spans(t, 0, chunks)], axis=1)
    else:
      y = _attend(q, k, v, mask, prefix, bf16)
    return self.out(y.reshape(b, t, d)), cache


def _heads(x):
  """[B, T, H, D] -> [B*H, T, D]."""
  b, t, h, d = x.shape
  return jnp.transpose(x, (0, 2, 1, 3)).reshape(b * h, t, d)


def _unheads(x, b):
  bh, t, d = x.shape
  return jnp.transpose(x.reshape(b, bh // b, t, d), (0, 2, 1, 3))


def _chunk_spans(t, prefix_len, chunks):
  """Static (query start, query end, key end, mask) per causal query block."""
  size = -(-t // max(chunks, 1))
  spans = []
  for s0 in range(0, t, size):
    s1 = min(s0 + size, t)
    keys = jnp.arange(prefix_len + s1)
    mask = (keys[None, :] < prefix_len) | (keys[None, :] - prefix_len <= jnp.arange(s0, s1)[:, None])
    spans.append((s0, s1, prefix_len + s1, mask))
  return spans


def _probs(q, k, mask, scale):
  logits = jnp.einsum("gqd,gkd->gqk", q * scale, k)
  return jax.nn.softmax(jnp.where(mask, logits, -1e30), axis=-1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def blocked_attention(q, k, v, prefix_len: int, chunks: int, group: int):
  """Exact causal softmax attention of q [B, T, H, D] over k, v [B, P+T, H, D] (the first P
  key slots, a prefix, visible to every query), computed `group` (sequence, head) pairs at a
  time in a loop, flash-attention style: each pair's [T, P+T] probabilities are built in
  cache, used and dropped, and the backward pass recomputes them instead of storing a
  [B, H, T, P+T] tensor. On CPUs XLA runs batched attention products at a fraction of the
  dense matmul rate; this is faster there (`python benchmarks/music_throughput.py --set
  model.attn_block=0` vs the default 16). `chunks` skips the masked upper triangle."""
  return _blocked_fwd(q, k, v, prefix_len, chunks, group)[0]


def _grouped(x, group):
  return x.reshape((-1, group) + x.shape[1:])


def _blocked_fwd(q, k, v, prefix_len, chunks, group):
  b, t = q.shape[:2]
  scale = 1.0 / math.sqrt(q.shape[-1])
  spans = _chunk_spans(t, prefix_len, chunks)
  qh, kh, vh = _heads(q), _heads(k), _heads(v)

  def one(x):
    qi, ki, vi = x
    return jnp.concatenate([jnp.einsum("gqk,gkd->gqd", _probs(qi[:, s0:s1], ki[:, :e], m, scale),
                                       vi[:, :e]) for s0, s1, e, m in spans], axis=1)
  o = jax.lax.map(one, (_grouped(qh, group), _grouped(kh, group), _grouped(vh, group)))
  o = o.reshape(qh.shape[:2] + (vh.shape[-1],))
  return _unheads(o, b), (qh, kh, vh, o)


def _blocked_bwd(prefix_len, chunks, group, res, g):
  qh, kh, vh, o = res
  b = g.shape[0]
  t = qh.shape[1]
  scale = 1.0 / math.sqrt(qh.shape[-1])
  spans = _chunk_spans(t, prefix_len, chunks)

  def one(x):
    qi, ki, vi, oi, gi = x
    dq, dk, dv = [], jnp.zeros_like(ki), jnp.zeros_like(vi)
    for s0, s1, e, m in spans:
      qc, gc = qi[:, s0:s1], gi[:, s0:s1]
      p = _probs(qc, ki[:, :e], m, scale)
      dv = dv.at[:, :e].add(jnp.einsum("gqk,gqd->gkd", p, gc))
      dp = jnp.einsum("gqd,gkd->gqk", gc, vi[:, :e])
      ds = p * (dp - jnp.sum(gc * oi[:, s0:s1], -1, keepdims=True)) * scale
      dq.append(jnp.einsum("gqk,gkd->gqd", ds, ki[:, :e]))
      dk = dk.at[:, :e].add(jnp.einsum("gqk,gqd->gkd", ds, qc))
    return jnp.concatenate(dq, axis=1), dk, dv
  gh = _heads(g.astype(o.dtype))
  dq, dk, dv = jax.lax.map(one, tuple(_grouped(x, group) for x in (qh, kh, vh, o, gh)))
  back = lambda x, ref: _unheads(x.reshape(ref.shape), b)
  return back(dq, qh), back(dk, kh), back(dv, vh)


blocked_attention.defvjp(_blocked_fwd, _blocked_bwd)


def _attend(q, k, v, mask, prefix, bf16=False):
  """Softmax attention of q [B, T, H, Dh] over k, v [B, S, H, Dh] (and a prefix), mask [T, S].
  bf16: both products multiply bf16 operands with fp32 accumulation (precision.bf16_bmm)."""
  if prefix is not None:
    k, v = jnp.concatenate([prefix[0], k], 1), jnp.concatenate([prefix[1], v], 1)
    mask = jnp.concatenate([jnp.ones((mask.shape[0], prefix[0].shape[1]), bool), mask], 1)
  if bf16:
    logits = bf16_bmm(jnp.transpose(q / math.sqrt(q.shape[-1]), (0, 2, 1, 3)),
                      jnp.transpose(k, (0, 2, 3, 1)))
  else:
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / math.sqrt(q.shape[-1])
  logits = jnp.where(mask, logits, -1e30)
  probs = jax.nn.softmax(logits, axis=-1)
  if bf16:
    return jnp.transpose(bf16_bmm(probs, jnp.transpose(v, (0, 2, 1, 3))), (0, 2, 1, 3))
  return jnp.einsum("bhqk,bkhd->bqhd", probs.astype(v.dtype), v)


#: Rematerialisation (`model.remat`): "none" stores every activation for the backward pass;
#: "full" stores only each block's input and recomputes the block; "dots" keeps the matmul
#: outputs without batch dimensions (jax.checkpoint_policies.dots_with_no_batch_dims_saveable)
#: and recomputes the rest -- the usual memory/compute trade for long contexts.
REMAT_POLICIES = {"none": None, "full": None,
                  "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable}


@functools.lru_cache(maxsize=None)
def _remat_block(policy: str, chunks: int, pairs: int):
  def run(block, x, q_pos, mask, dropout, rngs, prefix):
    return block(x, q_pos, mask, dropout=dropout, rngs=rngs, prefix=prefix, chunks=chunks,
                 pairs=pairs)[0]
  return nnx.remat(run, policy=REMAT_POLICIES[policy], static_argnums=(4,))


class Block(nnx.Module):
  def __init__(self, d_model, num_heads, d_ff, *, rngs):
    self.norm1 = nnx.LayerNorm(d_model, rngs=rngs)
    self.attn = Attention(d_model, num_heads, rngs=rngs)
    self.norm2 = nnx.LayerNorm(d_model, rngs=rngs)
    self.mlp_in = Linear(d_model, d_ff, rngs=rngs)
    self.mlp_out = Linear(d_ff, d_model, axes=("mlp", "embed"), rngs=rngs)

  def __call__(self, x, q_pos, mask, *, dropout=0.0, rngs=(None, None), cache=None, index=None,
               prefix=None, chunks=1, pairs=0):
    a, cache = self.attn(self.norm1(x), q_pos, mask, cache, index, prefix, chunks, pairs)
    x = x + _dropout(a, dropout, rngs[0])
    m = self.mlp_out(jax.nn.gelu(self.mlp_in(self.norm2(x))))
    return x + _dropout(m, dropout, rngs[1]), cache


class CausalTransformer(nnx.Module):
  """The language model music (Music Transformer tokens) and poetry (characters) share."""
  def __init__(self, vocab: int, d_model: int = 256, num_layers: int = 4, num_heads: int = 4,
               d_ff: int = 1024, dropout: float = 0.1, attn_chunks: int = 1, attn_block: int = 0,
               remat: str = "none", cond_slot: int = -1, *, rngs: nnx.Rngs):
    if remat not in REMAT_POLICIES:
      raise ValueError(f"remat={remat!r}: choose one of {tuple(REMAT_POLICIES)}")
    self.remat = remat               # rematerialise each block in the backward pass
    self.vocab, self.d_model, self.num_layers = vocab, d_model, num_layers
    self.num_heads, self.head_dim = num_heads, d_model // num_heads
    self.dropout = dropout
    self.attn_chunks = attn_chunks   # causal query blocks for whole sequences (speed only)
    self.attn_block = attn_block     # >0: blocked_attention, pairs per loop step (speed only)
    # cond_slot >= 0: the token at that position (a control token: the music's mode) is a
    # condition at every position: its embedding is added to every position's input, so a
    # long context cannot outweigh it; decoding keeps it in the cache's last entry.
    self.cond_slot = cond_slot
    self.embed = Embed(vocab, d_model, rngs=rngs)
    self.blocks = nnx.List([Block(d_model, num_heads, d_ff, rngs=rngs) for _ in range(num_layers)])
    self.norm = nnx.LayerNorm(d_model, rngs=rngs)
    self.head = Linear(d_model, vocab, axes=("embed", "vocab"), rngs=rngs)
    self.layer_order = ("embed",) + tuple(f"blocks.{i}" for i in range(num_layers)) + ("norm", "head")

  def _layers(self, x, q_pos, mask, rng, caches, index, prefix, chunks=1, pairs=0):
    train = rng is not None
    keys = jax.random.split(rng, 2 * self.num_layers + 1) if train else [None] * (2 * self.num_layers + 1)
    x = _dropout(x, self.dropout, keys[0])
    new_caches = []
    for i, block in enumerate(self.blocks):
      p = None if prefix is None else (prefix["k"][i], prefix["v"][i])
      r = (keys[2 * i + 1], keys[2 * i + 2])
      if caches is None and self.remat != "none":   # whole sequences: recompute in backward
        x = _remat_block(self.remat, chunks, pairs)(block, x, q_pos, mask, self.dropout, r, p)
        new_caches.append(None)
        continue
      x, c = block(x, q_pos, mask, dropout=self.dropout, rngs=r,
                   cache=None if caches is None else caches[i], index=index, prefix=p,
                   chunks=chunks, pairs=pairs)
      new_caches.append(c)
    logits = self.head(self.norm(x)).astype(jnp.float32)
    return logits, (new_caches if caches is not None else None)

  def __call__(self, tokens, *, train: bool = False, rng=None, prefix=None):
    t = tokens.shape[1]
    pos = jnp.arange(t)
    mask = pos[None, :] <= pos[:, None]
    x = self.embed(tokens)
    if self.cond_slot >= 0:
      x = x + self.embed(tokens[:, self.cond_slot])[:, None]
    logits, _ = self._layers(x, pos, mask, rng if train else None, None, None, prefix,
                             self.attn_chunks, self.attn_block)
    return logits

  def init_cache(self, batch: int, length: int, dtype=jnp.float32):
    shape = (batch, length, self.num_heads, self.head_dim)
    layers = [{"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}
              for _ in range(self.num_layers)]
    if self.cond_slot >= 0:
      layers.append({"cond": jnp.zeros((batch, self.d_model), dtype)})
    return layers

  def decode(self, tokens, cache, index, prefix=None):
    """Logits for `tokens` [B, T] placed at positions index.. (attending to the cache); the
    prompt (index 0) first, with the condition token, when there is one."""
    t = tokens.shape[1]
    length = cache[0]["k"].shape[1]
    q_pos = index + jnp.arange(t)
    mask = jnp.arange(length)[None, :] <= q_pos[:, None]
    x = self.embed(tokens)
    x = x.astype(cache[0]["k"].dtype)
    if self.cond_slot < 0:
      return self._layers(x, q_pos, mask, None, cache, index, prefix)
    if isinstance(index, int) and index == 0 and t > self.cond_slot:   # the prompt
      cond = self.embed(tokens[:, self.cond_slot]).astype(x.dtype)
    else:
      cond = cache[-1]["cond"]
    logits, layers = self._layers(x + cond[:, None], q_pos, mask, None, cache[:-1], index, prefix)
    return logits, layers + [{"cond": cond}]
