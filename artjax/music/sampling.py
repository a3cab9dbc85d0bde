"""Autoregressive sampling of token sequences inside one jitted loop.

`sample_cached` runs the prompt through the model once (filling a KV cache), then one
token per `lax.scan` step attending to the cache; `sample_recompute` reruns the whole
sequence every step (the baseline the cache is measured against, and its reference in
tests). Both draw tokens the same way (`pick`): the encoding's allowed-next mask,
temperature, nucleus (top-p) truncation; a sequence stops after `max_frames` frames
(later positions are PAD).

Classifier-free guidance (`guidance` = w, with `uncond_prompt`): the batch runs twice,
with the conditional and the unconditional prompt; tokens are drawn from
l_uncond + w * (l_cond - l_uncond) and fed to both halves (w = 1: plain conditional).

`logit_bias` [B, V] is added to every step's logits before drawing (key-profile steering:
`encoding.key_bias`).
"""

from __future__ import annotations

from artjax.music import encoding as enc
from artjax.nn import sampling as lm_sampling


def grammar(last, t):
  """The music encoding's allowed-next tokens after `last` [B] (any step t)."""
  return enc.allowed_next(last)


def _music(kw):
  return dict(kw, allowed=kw.get("allowed") or grammar, eof=enc.EOF, pad=enc.PAD)


def pick(logits, last_token, key, temperature: float, top_p: float, allowed=None):
  """One token per row after `last_token` [B] under the music grammar (or `allowed`)."""
  mask = enc.allowed_next(last_token) if allowed is None else allowed
  return lm_sampling.pick(logits, key, temperature, top_p, mask)


def sample_cached(model, prompt, steps: int, key, **kw):
  """artjax.nn.sampling.sample_cached under the music grammar; frames end at EOF."""
  return lm_sampling.sample_cached(model, prompt, steps, key, **_music(kw))


def sample_recompute(model, prompt, steps: int, key, **kw):
  """The cache-free baseline of `sample_cached` (same tokens)."""
  return lm_sampling.sample_recompute(model, prompt, steps, key, **_music(kw))
