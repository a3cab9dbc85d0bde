"""The Music Transformer on a user's MIDI (`configs/music.py --config.data.name=midi:PATH`):
any number of tracks and instruments, drums, tempo, time signature and velocity, in the
tokens of miditok's REMI, TSD or MIDILike (`data.tokenizer`; artjax.music.data.midi_folder).

Data: every training piece as BOS tokens EOS, end to end in one stream; the step draws
`train.batch_size` windows of `data.window` + 1 tokens at random offsets on device. The loss is
the mean NLL per token. Samples start from BOS (or a user's MIDI, `--prime`), end at EOS or
after `sample.max_tokens` (0: 8 x sample.num_frames), and are decoded by the tokenizer into
MIDI with each track's General MIDI program, rendered by FluidSynth. The mode, mood and
key controls of the chorale model do not apply (the data has no mode labels).
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from artjax import ConfigError
from artjax.engine import data as engine_data
from artjax.music.data import midi_folder
from artjax.nn import sampling
from artjax.nn.transformer import CausalTransformer
from artjax.tasks.base import Sampler, cast_floating
from artjax.tasks.lm import TransformerLM

FT_METHODS = ("none", "full", "top", "bitfit", "lora", "prefix")


class MidiLMTask(TransformerLM):
  eval_key = "val_nll_per_token"
  sample_kind = "tokens"
  sample_options = ("prime", "temperature", "top_p", "max_tokens", "audio")

  @classmethod
  def takes(cls, config) -> bool:
    """A music config on a user's MIDI (`midi:PATH`, `music21:NAME`): the field's tokens."""
    return midi_folder.is_midi(config.data.get("name", ""))

  def validate(self):
    c, sm = self.config, self.config.sample
    self._check_common()
    self._check_model(FT_METHODS)
    d = c.data
    midi_folder.check(d.name, d.get("tokenizer", "REMI"))
    if sm.get("mood") or sm.get("key_guidance", 0.0) or sm.get("guidance", 1.0) != 1.0:
      raise ConfigError("--mood, --key_guidance and --guidance need mode labels: a midi: dataset "
                        "has none (the chorale model has them)")
    if not 0.0 < sm.top_p <= 1.0 or sm.temperature < 0:
      raise ConfigError("sample.top_p must be in (0, 1] and sample.temperature >= 0")
    if sm.max_tokens < 0:
      raise ConfigError(f"sample.max_tokens must be >= 0, got {sm.max_tokens}")
    if not 16 <= d.window <= 8192:
      raise ConfigError(f"data.window must be in 16..8192, got {d.window}")
    self.tok = midi_folder.tokenizer(d.get("tokenizer", "REMI"))
    self.vocab_size = len(self.tok)
    self.pad, self.bos, self.eos = (self.tok.vocab[f"{t}_None"] for t in ("PAD", "BOS", "EOS"))
    self.prefix_len = 1
    self._data = None
    self._init_model()

  def build(self, key):
    m = self.config.model
    return CausalTransformer(self.vocab_size, m.d_model, m.num_layers, m.num_heads, m.d_ff,
                            m.dropout, m.attn_chunks, m.attn_block, m.remat, rngs=nnx.Rngs(key))

  def describe(self):
    m, d = self.config.model, self.config.data
    extra = "" if self.finetune is None else f", fine-tuning: {self.finetune.method}"
    where = d.name if d.name.startswith(midi_folder.CORPUS_PREFIX) else midi_folder.path_of(d.name)
    return (f"music transformer {m.num_layers}x{m.d_model} ({self.num_params:,} params) on "
            f"{where} in {d.get('tokenizer', 'REMI')} tokens (vocab "
            f"{self.vocab_size}, window {d.window}){extra}")

  # --- data (host) --------------------------------------------------------------------
  def dataset(self) -> dict:
    if self._data is None:
      d = self.config.data
      self._data = midi_folder.prepare(d.name, d.get("tokenizer", "REMI"),
                                       d.data_dir or engine_data.default_data_dir(),
                                       bool(d.get("strict", False)))
    return self._data

  def pieces(self, split: str) -> list[np.ndarray]:
    out = midi_folder.pieces_of(self.dataset(), split)
    if not out:
      raise ConfigError(f"midi:{midi_folder.path_of(self.config.data.name)}: no {split} pieces "
                        "(a dataset needs at least 3 readable files)")
    return out

  def stream(self, split: str) -> np.ndarray:
    """The split's pieces end to end, each as BOS tokens EOS."""
    return np.concatenate([np.concatenate([[self.bos], p, [self.eos]]) for p in self.pieces(split)]
                          ).astype(np.int32)

  def windows(self, split: str) -> np.ndarray:
    """[N, window + 1] consecutive windows of the split's stream (the last PAD-filled)."""
    s, w = self.stream(split), self.config.data.window + 1
    n = -(-len(s) // w)
    return np.pad(s, (0, n * w - len(s)), constant_values=self.pad).reshape(n, w)

  def rows(self, stream: np.ndarray) -> np.ndarray:
    """[N, 4w + w] rows of the stream (w = window + 1): row i starts at token 4w * i and
    overlaps the next by w, so every window of the stream lies inside some row (per-example
    arrays the loop can shard)."""
    w = self.config.data.window + 1
    r = 4 * w
    n = max(1, -(-(len(stream) - w) // r))
    padded = np.pad(stream, (0, max(0, n * r + w - len(stream))), constant_values=self.pad)
    return padded[np.arange(n)[:, None] * r + np.arange(r + w)[None]]

  def device_data(self):
    train = self.stream("train")
    if len(train) <= self.config.data.window + 1:
      raise ConfigError(f"the training pieces hold {len(train)} tokens, fewer than one window "
                        f"of data.window={self.config.data.window}: lower it or add music")
    out = {"train": {"rows": self.rows(train)}}
    if self.config.train.eval_every:
      out["val"] = self.windows("validation")
    return out

  # --- pure -------------------------------------------------------------------------
  def token_nll(self, params, prefix, seq, rng=None):
    """(-log p of each next token [B, L-1], weight [B, L-1]: every token but PAD)."""
    nll, targets = self.next_nll(params, prefix, seq, rng)
    return nll, (targets != self.pad).astype(jnp.float32)

  def batch(self, key, data):
    """[B, window + 1] windows of the training stream at random offsets (`rows`)."""
    b, w = self.config.train.batch_size, self.config.data.window + 1
    rows = data["train"]["rows"]
    k_row, k_off = jax.random.split(key)
    idx = jax.random.randint(k_row, (b,), 0, data["train_size"])
    off = jax.random.randint(k_off, (b,), 0, 4 * w)
    return rows[idx[:, None], off[:, None] + jnp.arange(w)[None]]

  def scored_nll(self, params, prefix, seq, key):
    return self.token_nll(params, prefix, seq, key)

  def step_metrics(self, loss, total, seq):
    return {"nll_per_token": loss}

  def nll_sum(self, state, windows, batch: int = 32):
    """(summed NLL in nats, scored tokens) over [N, window + 1] windows."""
    params, prefix = self.model_params(state)
    pad = (-windows.shape[0]) % batch
    windows = jnp.pad(windows, ((0, pad), (0, 0)), constant_values=self.pad)

    def body(acc, chunk):
      nll, w = self.token_nll(params, prefix, chunk)
      return (acc[0] + jnp.sum(nll * w), acc[1] + jnp.sum(w)), None
    (total, n), _ = jax.lax.scan(body, (jnp.zeros(()), jnp.zeros(())),
                                 windows.reshape((-1, batch) + windows.shape[1:]))
    return total, n

  def evaluate(self, state, data):
    total, n = self.nll_sum(state, data["val"])
    return {"val_nll_per_token": total / jnp.maximum(n, 1.0)}

  # --- sampling -----------------------------------------------------------------------
  @property
  def sample_steps(self) -> int:
    s = self.config.sample
    return s.max_tokens or 8 * s.num_frames

  def decode_tokens(self, state, seed, prompt):
    """[B, sample_steps] tokens after `prompt` [B, P]: EOS ends a piece, PAD after it."""
    s = self.config.sample
    params, prefix = self.model_params(state)
    return sampling.sample_cached(
        self.model(params), prompt, self.sample_steps, jax.random.key(seed),
        temperature=s.temperature, top_p=s.top_p, max_frames=1, eof=self.eos, pad=self.pad,
        prefix=None if prefix is None else cast_floating(prefix, self.compute_dtype))

  def sample(self, state, seed, num, opening=None):
    head = [self.bos] + list(opening or ())
    prompt = jnp.tile(jnp.asarray([head], jnp.int32), (num, 1))
    toks = self.decode_tokens(state, seed, prompt)
    return {"tokens": jnp.concatenate([prompt[:, 1:], toks], 1)}

  def sampler(self, state):
    s = self.config.sample
    return Sampler(
        fn=lambda seed, prompt: self.decode_tokens(state, seed, prompt),
        inputs=(("seed", "int32", (), "random seed (run.py sample --seed)"),
                ("prompt", "int32", ("B", 1), f"BOS={self.bos}")),
        outputs=(("tokens", "int32", ("B", self.sample_steps),
                  f"{self.config.data.get('tokenizer', 'REMI')} tokens (miditok, the run's "
                  f"settings: artjax.music.data.midi_folder.tokenizer), EOS={self.eos} ends the "
                  f"piece, PAD={self.pad} after"),),
        notes=(f"KV-cache sampler, temperature {s.temperature}, top_p {s.top_p}; with the prompt "
               "of BOS per row the tokens equal `run.py sample --seed=S --num=B`'s"))

  def read_opening(self, path):
    """The tokens of a user's MIDI file, to open every sample (`--prime`)."""
    if not os.path.isfile(path):
      raise ConfigError(f"--prime file {path!r} does not exist")
    try:
      with open(path, "rb") as f:
        ids = self.tok(midi_folder.score_of(f.read(), path)).ids
    except Exception as e:
      raise ConfigError(f"--prime {path!r} is not a readable MIDI file: "
                        f"{type(e).__name__}: {e or 'unreadable'}") from e
    if not 0 < len(ids) < self.sample_steps:
      raise ConfigError(f"--prime {path!r} is {len(ids)} tokens; it needs 1..{self.sample_steps - 1}")
    return tuple(int(t) for t in ids)

  def piece_of(self, row):
    """A symusic Score of one sampled row (special tokens dropped), or None if it holds no
    complete note."""
    ids = [int(t) for t in np.asarray(row) if int(t) not in (self.pad, self.bos, self.eos)]
    try:
      score = self.tok.decode(ids) if ids else None
    except Exception:             # a row the tokenizer cannot read back
      return None
    return score if score is not None and score.note_num() else None

  def write_samples(self, samples, out, grid=None):
    """`out` is a directory: sample_NNN.mid and .wav (FluidSynth, each track's GM program)
    per sample, and samples.npz."""
    from artjax.music import render
    os.makedirs(out, exist_ok=True)
    tokens = np.asarray(samples["tokens"])
    np.savez(os.path.join(out, "samples.npz"), tokens=tokens)
    audio = self.config.sample.get("audio", "wav")
    empty = 0
    for i, row in enumerate(tokens):
      score = self.piece_of(row)
      if score is None:
        empty += 1
        continue
      base = os.path.join(out, f"sample_{i:03d}")
      score.dump_midi(base + ".mid")
      if render.fluidsynth_available():
        render.write_audio(f"{base}.{audio}", render.normalise(render.fluidsynth_file(base + ".mid")))
    if empty:
      print(f"note: {empty} of {len(tokens)} samples decoded to no notes (no .mid written)",
            file=sys.stderr)

  def report(self, state, num, seed, workdir, suffix="", checkpoint="latest", options=None):
    from artjax.tasks import midi_report
    return midi_report.evaluate_midi(self, state, workdir, num or 16, seed)
