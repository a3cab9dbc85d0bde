"""An event encoding of quarter-note piano rolls that gives each frame an exact probability.

Each frame (the set of the 88 keys sounding at one beat) becomes its active keys in
ascending order followed by an end-of-frame token. The map frame -> tokens is one-to-one,
so a model's probability of a frame is the product of its token probabilities, and its
negative log-likelihood in nats per frame is comparable with the JSB Chorales literature
(which scores each frame as 88 binary keys). Models restrict each step to the tokens
that can follow (`allowed_next`): a key above the frame's last key, or end-of-frame.

Vocabulary: 0..87 keys (MIDI 21..108), EOF, BOS, PAD, MAJOR, MINOR, and NOMODE (the
"mode not given" token that conditional models are trained with now and then, so that
sampling can use classifier-free guidance).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

NUM_KEYS = 88
EOF, BOS, PAD, MAJOR, MINOR, NOMODE = 88, 89, 90, 91, 92, 93
VOCAB = 94
MODE_TOKENS = (MAJOR, MINOR)   # mode 0 (major), 1 (minor)


def roll_to_tokens(roll) -> np.ndarray:
  """uint8/bool [T, 88] -> int32 tokens (keys ascending, EOF after each frame)."""
  out = []
  for frame in np.asarray(roll):
    out.extend(np.flatnonzero(frame).tolist())
    out.append(EOF)
  return np.asarray(out, np.int32)


def tokens_to_roll(tokens) -> np.ndarray:
  """Tokens -> uint8 [T, 88]; special tokens are skipped, an unfinished last frame dropped."""
  frames, cur = [], np.zeros(NUM_KEYS, np.uint8)
  for t in np.asarray(tokens).tolist():
    if t < NUM_KEYS:
      cur[t] = 1
    elif t == EOF:
      frames.append(cur)
      cur = np.zeros(NUM_KEYS, np.uint8)
  return np.stack(frames) if frames else np.zeros((0, NUM_KEYS), np.uint8)


def prefix_tokens(mode=None) -> list[int]:
  """What precedes a chorale: BOS, then the mode control token for conditional models."""
  return [BOS] if mode is None else [BOS, MODE_TOKENS[int(mode)]]


def allowed_next(tokens):
  """Bool [..., L, VOCAB]: which tokens may follow each input token.

  After a key k: keys above k, or EOF; after anything else (EOF, BOS, a mode token): any
  key or EOF. Specials are never predicted."""
  vocab = jnp.arange(VOCAB)
  last = jnp.where(tokens < NUM_KEYS, tokens, -1)[..., None]
  return ((vocab < NUM_KEYS) & (vocab > last)) | (vocab == EOF)


def scored(targets):
  """Bool mask of target positions that count towards the likelihood (keys and EOF)."""
  return targets <= EOF


def transpose(tokens, shift):
  """Adds `shift` semitones to key tokens (callers keep them inside 0..87)."""
  return jnp.where(tokens < NUM_KEYS, tokens + shift, tokens)


def tonic_shift(tonic):
  """Semitones (-5..6) that move a piece in `tonic` (pitch class, 0 = C) to C: the nearest
  way, so key-normalised pieces stay in their register."""
  return -((tonic + 6) % 12 - 6)


def shift_roll(roll, shift: int) -> np.ndarray:
  """A piano roll [T, 88] moved by `shift` semitones (keys pushed off the piano dropped)."""
  roll = np.asarray(roll)
  out = np.zeros_like(roll)
  if shift >= 0:
    out[:, shift:] = roll[:, :NUM_KEYS - shift]
  else:
    out[:, :shift] = roll[:, -shift:]
  return out


def transpose_clipped(tokens, shift):
  """`transpose` that keeps every key on the piano (keys past an end are pinned to it)."""
  return jnp.where(tokens < NUM_KEYS, jnp.clip(tokens + shift, 0, NUM_KEYS - 1), tokens)


def pitch_class_profiles(rolls, tonics, modes) -> np.ndarray:
  """[2, 12] share of sounding notes on each pitch class relative to the tonic (0 = tonic,
  3 = minor third, 4 = major third, ...), for major (row 0) and minor (row 1) pieces, counted
  over quarter-note frames of `rolls` (uint8 [T, 88]) with their labelled tonic pitch class
  and mode."""
  counts = np.ones((2, 12))   # add-one smoothing
  pc = (np.arange(NUM_KEYS) + 21) % 12
  for roll, tonic, mode in zip(rolls, tonics, modes):
    per_key = np.asarray(roll, np.float64).sum(0)
    np.add.at(counts[int(mode)], (pc - int(tonic)) % 12, per_key)
  return counts / counts.sum(1, keepdims=True)


def key_bias(profiles, tonics, modes, weight: float) -> jnp.ndarray:
  """[B, VOCAB] logit bias steering samples towards keys (tonic pitch class, mode): each
  piano key gets weight * log profile[mode][(its pitch class - tonic) % 12], centred over the
  12 pitch classes so the bias reshapes which notes sound, not how many; other tokens get 0."""
  logp = np.log(np.asarray(profiles))
  logp = logp - logp.mean(1, keepdims=True)
  pc = (jnp.arange(NUM_KEYS) + 21) % 12
  rel = (pc[None, :] - jnp.asarray(tonics)[:, None]) % 12                 # [B, 88]
  keys = weight * jnp.asarray(logp, jnp.float32)[jnp.asarray(modes)[:, None], rel]
  return jnp.concatenate([keys, jnp.zeros((keys.shape[0], VOCAB - NUM_KEYS))], 1)


def frame_starts(tokens: np.ndarray) -> np.ndarray:
  """Token positions where frames begin (0 and after every EOF but the last)."""
  ends = np.flatnonzero(tokens == EOF)
  return np.concatenate([[0], ends[:-1] + 1]).astype(np.int32)


def eval_windows(token_rows, prefixes, window: int):
  """Sliding windows that score every token of every chorale exactly once.

  Returns (inputs [M, P+W-1], targets [M, P+W-1], score bool [M, P+W-1], frames): each
  window starts at a frame boundary; after the first, a window scores only the tokens
  past the previous window's end, so each keeps at least about window/2 tokens of context."""
  p = len(prefixes[0])
  ins, tgts, scores = [], [], []
  frames = 0
  for toks, pre in zip(token_rows, prefixes):
    n = len(toks)
    frames += int(np.sum(toks == EOF))
    starts = frame_starts(toks)
    a, scored_to = 0, 0
    while True:
      end = min(a + window, n)
      seq = np.full(p + window, PAD, np.int32)
      seq[:p] = pre
      seq[p:p + end - a] = toks[a:end]
      score = np.zeros(p + window - 1, bool)
      # target j of the window (seq[j + 1]) is chorale token a + j + 1 - p
      score[p - 1 + scored_to - a:p - 1 + end - a] = True
      ins.append(seq[:-1])
      tgts.append(seq[1:])
      scores.append(score)
      if end == n:
        break
      scored_to = end
      nxt = starts[starts <= end - window // 2]
      a = int(nxt[-1]) if len(nxt) and nxt[-1] > a else int(starts[starts > a][0])
  return (np.stack(ins), np.stack(tgts), np.stack(scores) & (np.stack(tgts) <= EOF),
          frames)
