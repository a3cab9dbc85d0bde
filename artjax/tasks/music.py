"""Symbolic music language modelling: the Music Transformer on Bach chorales.

Data: each chorale's quarter-note piano roll as tokens (artjax.music.encoding: keys
ascending, end-of-frame), preceded by BOS and, for a conditional model, a mode token
(major/minor). A training example is a window of `data.window` tokens starting at a
random frame of a random chorale, transposed by a random shift of up to
`data.transpose` semitones (inside the jitted step; the shift is clamped so every key
stays on the piano). The loss is the mean negative log-likelihood of the keys and
end-of-frame tokens under the encoding's allowed-next mask; `nll_per_frame` sums it per
frame (nats per frame, the JSB Chorales unit).

Fine-tuning (`finetune.method`): full, top (last k layers), bitfit, lora (dense kernels
whose path matches `finetune.lora_targets`), prefix (prefix-tuning, `finetune.prefix_len`
vectors per layer); the base weights of lora/prefix runs stay frozen (no optimizer state).
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from artjax import ConfigError
from artjax.music import data as data_lib
from artjax.nn.transformer import CausalTransformer
from artjax.music import encoding as enc, mood as mood_lib, sampling
from artjax.tasks.base import Sampler, cast_floating
from artjax.tasks.lm import TransformerLM
from artjax.tasks import music_report

MODES = {"all": None, "major": 0, "minor": 1}
FT_METHODS = ("none", "full", "top", "bitfit", "lora", "prefix")
SAMPLE_MODES = ("alternate", "major", "minor")


class MusicLMTask(TransformerLM):
  eval_key = "val_nll_per_frame"
  sample_kind = "tokens"
  sample_options = ("prime", "temperature", "top_p", "guidance", "mode", "key_guidance", "tonic",
                    "instruments", "audio", "mood")

  def validate(self):
    c = self.config
    self._check_common()
    if c.data.name != "chorales":
      raise ConfigError(f"the music task reads data.name='chorales', got {c.data.name!r}")
    if c.data.mode not in MODES:
      raise ConfigError(f"unknown data.mode {c.data.mode!r}; choose one of {tuple(MODES)}")
    if c.data.window < 8:
      raise ConfigError(f"data.window must be >= 8 tokens, got {c.data.window}")
    if not 0 <= c.data.transpose <= 12:
      raise ConfigError(f"data.transpose must be in 0..12 semitones, got {c.data.transpose}")
    self.key_normalised = bool(c.data.get("key_normalise", False))
    if self.key_normalised and c.data.transpose:
      raise ConfigError("data.key_normalise moves every chorale to C: it needs data.transpose=0 "
                        f"(random transposition would undo it), got {c.data.transpose}")
    self._check_model(FT_METHODS)
    self._validate_model(c.model)
    self._validate_sample(c.sample, c.model)
    self.conditional = bool(c.model.conditional)
    self._key_profiles = None
    self.prefix_len = 2 if self.conditional else 1
    self._init_model()

  @staticmethod
  def _validate_model(m):
    if m.attn_chunks < 1:
      raise ConfigError(f"model.attn_chunks must be >= 1, got {m.attn_chunks}")
    if m.attn_block < 0:
      raise ConfigError(f"model.attn_block must be >= 0 (0: XLA's batched attention), got {m.attn_block}")

  @staticmethod
  def _validate_sample(sm, m):
    from artjax.music import render
    render.check_sample(sm)
    if sm.guidance != 1.0 and not (m.conditional and m.cond_dropout > 0):
      raise ConfigError("sample.guidance != 1 needs a conditional model trained with "
                        "model.cond_dropout > 0 (it uses the model's unconditional mode)")
    if sm.key_guidance < 0 or not -1 <= sm.tonic <= 11:
      raise ConfigError(f"sample.key_guidance must be >= 0 and sample.tonic in -1..11, got "
                        f"{sm.key_guidance} and {sm.tonic}")
    if sm.mode not in SAMPLE_MODES:
      raise ConfigError(f"unknown sample.mode {sm.mode!r}; choose one of {SAMPLE_MODES}")
    MusicLMTask._check_mood(sm, m)
    if not 0.0 < sm.top_p <= 1.0:
      raise ConfigError(f"sample.top_p must be in (0, 1], got {sm.top_p}")

  def build(self, key):
    m = self.config.model
    every = self.conditional and m.get("cond_every", False)   # the mode token at every position
    return CausalTransformer(enc.VOCAB, m.d_model, m.num_layers, m.num_heads, m.d_ff, m.dropout,
                            m.attn_chunks, m.attn_block, m.remat, cond_slot=1 if every else -1,
                            rngs=nnx.Rngs(key))

  def describe(self):
    m = self.config.model
    extra = "" if self.finetune is None else f", fine-tuning: {self.finetune.method}"
    return (f"music transformer {m.num_layers}x{m.d_model} ({self.num_params:,} params, "
            f"{'mode-conditional' if self.conditional else 'unconditional'}) on chorales "
            f"(mode={self.config.data.mode}, window {self.config.data.window}){extra}")

  # --- data -------------------------------------------------------------------------
  def _prefix(self, mode):
    return enc.prefix_tokens(mode if self.conditional else None)

  def split_tokens(self, split: str):
    """(token rows, modes) of a split, filtered by data.mode; with data.key_normalise every
    chorale is first moved to the tonic C (the nearest way, `encoding.tonic_shift`)."""
    ds = data_lib.load_chorales(self.config.data.data_dir or None)
    want = MODES[self.config.data.mode]
    rows, modes = [], []
    tonics = ds.splits[split]["tonic"]
    for roll, mode, tonic in zip(ds.rolls(split), ds.modes(split), tonics):
      if want is None or mode == want:
        if self.key_normalised:
          roll = enc.shift_roll(roll, int(enc.tonic_shift(tonic)))
        rows.append(enc.roll_to_tokens(roll))
        modes.append(int(mode))
    if not rows:
      raise ConfigError(f"data.mode={self.config.data.mode!r} leaves the {split} split empty")
    return rows, np.asarray(modes, np.int32)

  def windows(self, split: str):
    rows, modes = self.split_tokens(split)
    return enc.eval_windows(rows, [self._prefix(m) for m in modes], self.config.data.window)

  def device_data(self):
    w = self.config.data.window
    rows, modes = self.split_tokens("train")
    n_max = max(len(r) for r in rows) + w
    tokens = np.full((len(rows), n_max), enc.PAD, np.int32)
    starts = [enc.frame_starts(r) for r in rows]
    f_max = max(len(s) for s in starts)
    start_arr = np.zeros((len(rows), f_max), np.int32)
    for i, (r, s) in enumerate(zip(rows, starts)):
      tokens[i, :len(r)] = r
      start_arr[i, :len(s)] = s
    keys = [r[r < enc.NUM_KEYS] for r in rows]
    train = {"tokens": tokens, "starts": start_arr,
             "num_frames": np.asarray([len(s) for s in starts], np.int32),
             "low": np.asarray([k.min() for k in keys], np.int32),
             "high": np.asarray([k.max() for k in keys], np.int32), "mode": modes}
    out = {"train": train}
    if self.config.train.eval_every:
      ins, tgts, score, frames = self.windows("validation")
      out["val"] = {"inputs": ins, "targets": tgts, "score": score,
                    "frames": np.asarray(frames, np.float32)}
    return out

  # --- state ------------------------------------------------------------------------
  # --- pure -------------------------------------------------------------------------
  def token_nll(self, params, prefix, inputs, targets, rng=None):
    """-log p(target | inputs so far) per position, under the allowed-next mask."""
    logits = self.model(params)(inputs, train=rng is not None, rng=rng,
                                prefix=None if prefix is None else cast_floating(prefix, self.compute_dtype))
    logits = jnp.where(enc.allowed_next(inputs), logits, -1e30)
    safe = jnp.where(targets <= enc.EOF, targets, 0)
    return -jnp.take_along_axis(jax.nn.log_softmax(logits, -1), safe[..., None], -1)[..., 0]

  def batch(self, key, data):
    """A [B, P + W] token batch: random chorales, random frame starts, random transposition."""
    c = self.config
    b, w = c.train.batch_size, c.data.window
    train = data["train"]
    k_idx, k_frame, k_shift = jax.random.split(key, 3)
    idx = jax.random.randint(k_idx, (b,), 0, data["train_size"])
    f = jnp.floor(jax.random.uniform(k_frame, (b,)) * train["num_frames"][idx]).astype(jnp.int32)
    p0 = c.data.start_prob
    if p0 > 0:   # this share of windows opens at the chorale's first frame (where the mode is set)
      f = jnp.where(jax.random.bernoulli(jax.random.fold_in(k_frame, 1), p0, (b,)), 0, f)
    start = train["starts"][idx, f]
    toks = train["tokens"][idx[:, None], start[:, None] + jnp.arange(w)[None]]   # [B, W] gather
    t = c.data.transpose
    shift = jax.random.randint(k_shift, (b,), -t, t + 1)
    shift = jnp.clip(shift, -train["low"][idx], enc.NUM_KEYS - 1 - train["high"][idx])
    toks = enc.transpose(toks, shift[:, None])
    head = jnp.full((b, 1), enc.BOS, jnp.int32)
    if self.conditional:
      mode_tok = jnp.asarray(enc.MODE_TOKENS)[train["mode"][idx]]
      drop = self.config.model.cond_dropout
      if drop > 0:   # now and then "mode not given": the unconditional model for guidance
        k_drop = jax.random.fold_in(key, 1)
        mode_tok = jnp.where(jax.random.bernoulli(k_drop, drop, (b,)), enc.NOMODE, mode_tok)
      head = jnp.concatenate([head, mode_tok[:, None]], 1)
    return jnp.concatenate([head, toks], 1)

  def scored_nll(self, params, prefix, seq, key):
    """Next-token NLL [B, W] of a training window and its weights (notes and frame ends)."""
    inputs, targets = seq[:, :-1], seq[:, 1:]
    return (self.token_nll(params, prefix, inputs, targets, key),
            (targets <= enc.EOF).astype(jnp.float32))

  def step_metrics(self, loss, total, seq):
    frames = jnp.maximum(jnp.sum(seq[:, 1:] == enc.EOF), 1)
    return {"nll_per_frame": total / frames}

  def nll_of_windows(self, state, inputs, targets, score, batch: int = 64):
    """Summed NLL over scored targets of precomputed windows (see `eval_windows`)."""
    params, prefix = self.model_params(state)
    n = inputs.shape[0]
    pad = (-n) % batch
    ins = jnp.pad(inputs, ((0, pad), (0, 0)), constant_values=enc.PAD)
    tgt = jnp.pad(targets, ((0, pad), (0, 0)), constant_values=enc.PAD)
    sc = jnp.pad(score, ((0, pad), (0, 0)))

    def body(total, chunk):
      i, t, s = chunk
      return total + jnp.sum(jnp.where(s, self.token_nll(params, prefix, i, t), 0.0)), None
    shape = lambda x: x.reshape((-1, batch) + x.shape[1:])
    total, _ = jax.lax.scan(body, jnp.zeros((), jnp.float32), (shape(ins), shape(tgt), shape(sc)))
    return total

  def evaluate(self, state, data):
    v = data["val"]
    return {"val_nll_per_frame": self.nll_of_windows(state, v["inputs"], v["targets"], v["score"])
            / v["frames"]}

  # --- sampling ---------------------------------------------------------------------
  @staticmethod
  def _check_mood(sm, m):
    if not sm.get("mood", ""):
      if not 20.0 <= sm.get("bpm", mood_lib.BASE_BPM) <= 300.0:
        raise ConfigError(f"sample.bpm={sm.bpm}: a tempo in 20..300 beats per minute")
      return
    try:
      mood_lib.parse(sm.mood)
    except ValueError as e:
      raise ConfigError(f"sample.mood: {e}") from None
    if sm.mode != "alternate":
      raise ConfigError("sample.mood sets the mode (valence >= 0: major): drop sample.mode")
    if not m.conditional:
      raise ConfigError("sample.mood asks for a mode: this model is unconditional (train "
                        "configs/music.py:keynorm_every for one that obeys it)")

  def mood(self):
    """artjax.music.mood.Controls of `sample.mood`, or None."""
    text = self.config.sample.get("mood", "")
    return mood_lib.controls(*mood_lib.parse(text)) if text else None

  def sample_modes(self, num):
    if self.mood() is not None:
      return jnp.full((num,), self.mood().mode, jnp.int32)
    mode = self.config.sample.mode
    if mode == "alternate":
      return jnp.arange(num, dtype=jnp.int32) % 2
    return jnp.full((num,), 0 if mode == "major" else 1, jnp.int32)

  def key_profiles(self):
    """[2, 12] pitch-class profiles (relative to the tonic) of the major and minor training
    chorales, for key-profile steering (`sample.key_guidance`)."""
    if self._key_profiles is None:
      ds = data_lib.load_chorales(self.config.data.data_dir or None)
      tr = ds.splits["train"]
      self._key_profiles = enc.pitch_class_profiles(tr["rolls"], tr["tonic"], tr["mode"])
    return self._key_profiles

  def sample_tonics(self, seed, num, opening=None):
    """Tonic pitch class per sample: `sample.tonic` (0-11, 0 = C), else the lowest note of
    the opening, else drawn at random per sample."""
    t = self.config.sample.tonic
    if t >= 0:
      return jnp.full((num,), t, jnp.int32)
    if opening is not None and np.any(np.asarray(opening) < enc.NUM_KEYS):
      low = int(np.min(np.asarray(opening)[np.asarray(opening) < enc.NUM_KEYS]))
      return jnp.full((num,), (low + 21) % 12, jnp.int32)
    return jax.random.randint(jax.random.fold_in(jax.random.key(seed), 3), (num,), 0, 12)

  def prompt(self, num, opening=None, modes=None):
    """[num, P (+ opening)] prompt tokens: BOS, the mode token (conditional), an opening;
    `modes` [num] (0 major, 1 minor) defaults to `sample.mode`'s."""
    modes = self.sample_modes(num) if modes is None else modes
    cols = [jnp.full((num, 1), enc.BOS, jnp.int32)]
    if self.conditional:
      cols.append(jnp.asarray(enc.MODE_TOKENS)[modes][:, None])
    if opening is not None:   # [L] for every row, or [num, L]
      opening = jnp.asarray(opening, jnp.int32)
      cols.append(jnp.broadcast_to(opening, (num, opening.shape[-1])))
    return jnp.concatenate(cols, 1), modes

  def sample(self, state, seed, num, opening=None, cached: bool = True, modes=None,
             key_guidance=None):
    """{"tokens" [num, T] (PAD after the last frame), "modes" [num], "prompt" [num, P]}.

    `opening`: tokens of given first frames (priming); they are part of "tokens".
    `modes`: [num] requested modes (default: `sample.mode`'s); `key_guidance`: a (traced)
    weight in place of `sample.key_guidance`'s."""
    s = self.config.sample
    frames = s.num_frames - (0 if opening is None else int(np.sum(np.asarray(opening) == enc.EOF)))
    tonics = self.sample_tonics(seed, num, opening)
    to_c = jnp.asarray(enc.tonic_shift(tonics)) if self.key_normalised else None
    if to_c is not None and opening is not None:   # the model plays in C: so must the opening
      opening = enc.transpose_clipped(jnp.asarray(opening, jnp.int32)[None], to_c[:, None])
    prompt, modes = self.prompt(num, opening, modes)
    params, prefix = self.model_params(state)
    steps = s.max_tokens or 8 * frames
    fn = sampling.sample_cached if cached else sampling.sample_recompute
    guide = {}
    if self.conditional and s.guidance != 1.0:
      guide = dict(guidance=s.guidance, uncond_prompt=prompt.at[:, 1].set(enc.NOMODE))
    bias = None
    if key_guidance is not None or s.key_guidance > 0:
      bias = enc.key_bias(self.key_profiles(), tonics if to_c is None else jnp.zeros_like(tonics),
                          modes, s.key_guidance if key_guidance is None else key_guidance)
    toks = fn(self.model(params), prompt, steps, jax.random.key(seed), temperature=s.temperature,
              top_p=s.top_p, max_frames=frames, logit_bias=bias,
              prefix=None if prefix is None else cast_floating(prefix, self.compute_dtype), **guide)
    if opening is not None:
      toks = jnp.concatenate([prompt[:, self.prefix_len:], toks], 1)
    if to_c is not None:                  # from C to each piece's tonic
      toks = enc.transpose_clipped(toks, -to_c[:, None])
    if self.mood() is not None and self.mood().register:   # the mood's register
      toks = enc.transpose_clipped(toks, jnp.int32(self.mood().register))
    return {"tokens": toks, "modes": modes}

  def sampler(self, state):
    s = self.config.sample
    steps = s.max_tokens or 8 * s.num_frames
    what = ("requested mode of each piece: 0 major, 1 minor" if self.conditional else
            "ignored (unconditional model): only its length B, the number of pieces, counts")
    settings = (f"temperature {s.temperature}, top_p {s.top_p}, guidance {s.guidance}, "
                f"tonic {s.tonic}, {s.num_frames} frames")
    return Sampler(
        fn=lambda seed, modes, key_guidance: self.sample(
            state, seed, modes.shape[0], modes=modes, key_guidance=key_guidance)["tokens"],
        inputs=(("seed", "int32", (), "random seed (run.py sample --seed)"),
                ("modes", "int32", ("B",), what),
                ("key_guidance", "float32", (), "key-profile steering weight towards each "
                 f"piece's mode (0 = off; the run's config: {s.key_guidance})")),
        outputs=(("tokens", "int32", ("B", steps),
                  "event tokens of the piano-roll encoding (artjax.music.encoding): keys "
                  f"0..{enc.NUM_KEYS - 1} sound in the current frame, EOF={enc.EOF} ends a "
                  f"frame, PAD={enc.PAD} after the last frame"),),
        notes=(f"KV-cache sampler with the run's sampling settings ({settings}); with modes = "
               "those `run.py sample --seed=S --num=B` uses (sample.mode) and its key_guidance the "
               "tokens equal its samples.npz tokens; row i does not depend on B"))

  def read_opening(self, path):
    """The tokens of a MIDI file's frames, to open every sample (`--prime`)."""
    from artjax.music import render
    if not os.path.exists(path):
      raise ConfigError(f"--prime file {path!r} does not exist")
    if os.path.getsize(path) == 0:
      raise ConfigError(f"--prime {path!r} is empty (0 bytes), not a MIDI file")
    try:
      roll = render.read_midi(path)
    except Exception as e:
      raise ConfigError(f"--prime {path!r} is not a readable MIDI file: "
                        f"{type(e).__name__}: {e or 'unreadable'}") from e
    if not len(roll) or len(roll) >= self.config.sample.num_frames:
      raise ConfigError(f"--prime {path!r} has {len(roll)} frames; it needs 1.."
                        f"{self.config.sample.num_frames - 1} (sample.num_frames)")
    return tuple(int(t) for t in enc.roll_to_tokens(roll))

  def report(self, state, num, seed, workdir, suffix="", checkpoint="latest", options=None):
    return music_report.evaluate_music(self, state, workdir, num or 32, seed)

  def write_samples(self, samples, out, grid=None):
    """`out` is a directory: sample_NNN.{mid,wav,png} per sample and samples.npz."""
    from artjax.music import render
    from artjax.engine.writers import save_png
    os.makedirs(out, exist_ok=True)
    tokens = np.asarray(samples["tokens"])
    np.savez(os.path.join(out, "samples.npz"), tokens=tokens, modes=np.asarray(samples["modes"]))
    sm = self.config.sample
    bpm = self.mood().bpm if self.mood() is not None else sm.get("bpm", mood_lib.BASE_BPM)
    how = None
    for i, row in enumerate(tokens):
      roll = enc.tokens_to_roll(row)
      base = os.path.join(out, f"sample_{i:03d}")
      how = render.save_piece(base, roll, sm.get("instruments", "choir"), sm.get("audio", "wav"),
                              bpm)
      save_png(base + ".png", render.roll_image(roll))
    if how == "numpy":
      print(render.FALLBACK_NOTE, file=sys.stderr)
