"""Autoregressive sampling from a causal Transformer (artjax.nn.transformer): nucleus
sampling with an optional per-step mask of allowed tokens (a grammar or a verse form),
classifier-free guidance, a logit bias, and a KV cache (or the recompute baseline) -- each
a whole `lax.scan`. Knows no vocabulary: the domains pass their grammar and end tokens."""

from __future__ import annotations

import jax
import jax.numpy as jnp



def pick(logits, key, temperature: float, top_p: float, allowed=None):
  """One token per row from logits [B, V]: greedy at temperature 0, else nucleus (top-p)
  sampling; `allowed` [B, V] (None = every token) masks the rest out. `key`: one key, or
  one per row ([B]: then a row's token does not depend on the others or on B)."""
  if allowed is not None:
    logits = jnp.where(allowed, logits, -jnp.inf)
  if temperature <= 0:
    return jnp.argmax(logits, -1).astype(jnp.int32)
  logits = logits / temperature
  if top_p < 1.0:
    probs = jax.nn.softmax(logits, -1)
    order = jnp.argsort(-probs, axis=-1)
    sorted_p = jnp.take_along_axis(probs, order, -1)
    keep_sorted = (jnp.cumsum(sorted_p, -1) - sorted_p) < top_p   # smallest set reaching p
    keep = jnp.take_along_axis(keep_sorted, jnp.argsort(order, axis=-1), -1)   # unsort
    logits = jnp.where(keep, logits, -jnp.inf)
  if key.ndim == 1:
    return jax.vmap(lambda k, lg: jax.random.categorical(k, lg))(key, logits).astype(jnp.int32)
  return jax.random.categorical(key, logits, -1).astype(jnp.int32)


def _advance(tok, frames, max_frames, eof, pad):
  """After `max_frames` end tokens (`eof`) every row writes `pad`."""
  tok = jnp.where(frames >= max_frames, pad, tok)
  return tok, frames + (tok == eof)


def _guided(logits, b, guidance):
  if guidance is None:
    return logits
  cond, uncond = logits[:b], logits[b:]
  return uncond + guidance * (cond - uncond)


def _both(prompt, uncond_prompt):
  return prompt if uncond_prompt is None else jnp.concatenate([prompt, uncond_prompt], 0)


def sample_cached(model, prompt, steps: int, key, *, temperature=1.0, top_p=1.0,
                  max_frames=1 << 30, prefix=None, cache_dtype=jnp.float32,
                  guidance=None, uncond_prompt=None, logit_bias=None, allowed=None,
                  eof=-1, pad=0, constraint=None, fold_keys=False):
  """prompt int32 [B, P] -> sampled tokens [B, steps] with the model's KV cache, one jitted
  scan. `allowed(last [B], t)` -> bool [B, V]: the tokens allowed at step t (None = all);
  `constraint`: a stateful grammar instead (init(B) -> state, mask(state, t) -> bool [B, V],
  update(state, tokens [B], t) -> state; its state rides in the scan's carry); `fold_keys`:
  step t's key is fold_in(key, t), so a longer decode begins with the same tokens;
  `guidance` with `uncond_prompt`: classifier-free guidance; after `max_frames` `eof`
  tokens a row writes `pad`."""
  b, p = prompt.shape
  bias = 0.0 if logit_bias is None else logit_bias
  g = guidance if uncond_prompt is not None else None
  full = _both(prompt, uncond_prompt)
  cache = model.init_cache(full.shape[0], p + steps, cache_dtype)
  logits, cache = model.decode(full, cache, 0, prefix)

  def body(carry, k):
    cache, logits, last, frames, t, cstate = carry
    mask = None if allowed is None else allowed(last, t)
    if constraint is not None:
      mask = constraint.mask(cstate, t)
    tok, frames = _advance(pick(_guided(logits, b, g) + bias, k, temperature, top_p, mask),
                           frames, max_frames, eof, pad)
    if constraint is not None:
      cstate = constraint.update(cstate, tok, t)
    logits, cache = model.decode(_both(tok[:, None], None if g is None else tok[:, None]),
                                 cache, p + t, prefix)
    return (cache, logits[:, 0], tok, frames, t + 1, cstate), tok

  cstate = None if constraint is None else constraint.init(b)
  carry = (cache, logits[:, -1], prompt[:, -1], jnp.zeros(b, jnp.int32), jnp.int32(0), cstate)
  fold = lambda k, i: jax.random.fold_in(k, i)  # noqa: E731
  keys = (jax.vmap(lambda t: jax.vmap(lambda r: fold(fold(key, t), r))(jnp.arange(b)))(
      jnp.arange(steps)) if fold_keys else jax.random.split(key, steps))
  _, toks = jax.lax.scan(body, carry, keys)
  return toks.T


def sample_recompute(model, prompt, steps: int, key, *, temperature=1.0, top_p=1.0,
                     max_frames=1 << 30, prefix=None, guidance=None, uncond_prompt=None,
                     logit_bias=None, chunk: int = 0, allowed=None, eof=-1, pad=0):
  """The same sampler without a cache: the sequence is recomputed every step. chunk=0
  recomputes the whole padded buffer (prompt + steps) every step; chunk=C only the prefix
  written so far, rounded up to a multiple of C tokens (causal attention: the padding after
  the current position changes nothing, so the tokens are the same) -- the honest baseline
  for the cache's speed-up, about half the work of the whole buffer."""
  b, p = prompt.shape
  bias = 0.0 if logit_bias is None else logit_bias
  g = guidance if uncond_prompt is not None else None
  full = _both(prompt, uncond_prompt)
  buf = jnp.concatenate([full, jnp.full((full.shape[0], steps), pad, jnp.int32)], 1)

  def body(carry, k, length):
    buf, frames, t = carry
    view = jax.lax.slice_in_dim(buf, 0, length, axis=1)
    logits = jax.lax.dynamic_index_in_dim(model(view, prefix=prefix), p + t - 1, 1, False)
    last = jax.lax.dynamic_index_in_dim(buf, p + t - 1, 1, False)[:b]
    mask = None if allowed is None else allowed(last, t)
    tok, frames = _advance(pick(_guided(logits, b, g) + bias, k, temperature, top_p, mask),
                           frames, max_frames, eof, pad)
    buf = jax.lax.dynamic_update_slice(buf, _both(tok, None if g is None else tok)[:, None],
                                       (0, p + t))
    return (buf, frames, t + 1), tok

  keys = jax.random.split(key, steps)
  carry, out = (buf, jnp.zeros(b, jnp.int32), jnp.int32(0)), []
  size = chunk if chunk > 0 else steps
  for s0 in range(0, steps, size):   # static buffer length per chunk of steps
    s1 = min(s0 + size, steps)
    length = p + s1 if chunk > 0 else p + steps
    carry, toks = jax.lax.scan(lambda c, k, n=length: body(c, k, n), carry, keys[s0:s1])
    out.append(toks)
  return jnp.concatenate(out, 0).T
