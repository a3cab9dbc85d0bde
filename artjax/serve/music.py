"""Serving the chorale Music Transformer: /v1/generate (a MIDI or WAV piece, or a zip of
each piece's MIDI and WAV), by mode or by mood, with key guidance and General MIDI voices.

Model side: the exported sampler f(seed, modes, key_guidance), one request per call (a
request's pieces are its rows). HTTP side: the request's fields, checked, and the answer's
bytes. A Music Transformer on a user's MIDI (f(seed, prompt)) is sampled with `run.py sample`.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile

import jax
import numpy as np

from artjax import ConfigError, deploy
from artjax.music import encoding as enc, mood as mood_lib, render
from artjax.serve.http import BadRequest, Endpoint, counted_request, field
from artjax.serve.served import Model, buckets

KIND = "music"
EXPORTED, IN_MEMORY = deploy.ARTIFACT, "sampler"
FIELDS = {"model", "num", "seed", "mode", "mood", "key_guidance", "format", "instruments"}


@dataclasses.dataclass
class MusicModel(Model):
  formats = ("midi", "wav", "zip")

  def run_request(self, seed: int, modes, key_guidance: float):
    """tokens [n, T] of n pieces with the given modes (0 major, 1 minor)."""
    n = len(modes)
    b = self.bucket(n)
    modes = np.concatenate([np.asarray(modes, np.int32), np.zeros(b - n, np.int32)])
    return np.asarray(self.fn(np.int32(seed), modes, np.float32(key_guidance)))[:n]

  def warm_up(self) -> None:
    for b in self.buckets:
      jax.block_until_ready(self.fn(np.int32(0), np.zeros(b, np.int32), np.float32(0)))


def make(name: str, manifest: dict, fn, files: dict, limits: dict, path: str) -> MusicModel:
  if [i["name"] for i in manifest.get("inputs", [])][1:2] != ["modes"]:
    raise ConfigError(f"{path!r} is a Music Transformer on a user's MIDI (f(seed, prompt)): "
                      "/v1/generate serves the chorale models only; sample it with run.py sample "
                      "or call its exported sampler")
  n = min(limits["max_num"], limits["max_music"])
  return MusicModel(name, KIND, manifest, fn, buckets(n), n)


def parse(body: dict, m, settings) -> dict:
  """The validated request (BadRequest with the first problem)."""
  req = counted_request(body, FIELDS, f"a {m.kind} model", m.max_num, MusicModel.formats, "zip")
  _mood_or_mode(body, req)
  req["key_guidance"] = float(field(body, "key_guidance", float, 0.0, 0.0, 10.0))
  req["instruments"] = field(body, "instruments", str, "choir")
  try:
    render.parse_instruments(req["instruments"])
  except ValueError as e:
    raise BadRequest(422, str(e)) from None
  if req["format"] in ("midi", "wav") and req["num"] != 1:
    raise BadRequest(422, f"format {req['format']!r} holds one piece: use num=1 or format 'zip'")
  return req


def _mood_or_mode(body, req) -> None:
  """modes, bpm and register of a music request: from `mode`, or from `mood` ("VALENCE,AROUSAL",
  artjax/music/mood.py: mode from valence, tempo and register from both)."""
  mood = field(body, "mood", str, "")
  if mood:
    if "mode" in body:
      raise BadRequest(422, "'mood' sets the mode (valence >= 0: major): give 'mood' or 'mode'")
    try:
      ctl = mood_lib.controls(*mood_lib.parse(mood))
    except ValueError as e:
      raise BadRequest(422, str(e)) from None
    req.update(modes=np.full(req["num"], ctl.mode), bpm=ctl.bpm, register=ctl.register)
    return
  mode = field(body, "mode", str, "alternate")
  if mode not in ("alternate", "major", "minor"):
    raise BadRequest(422, f"'mode' must be alternate, major or minor, got {mode!r}")
  req.update(modes=(np.arange(req["num"]) % 2 if mode == "alternate" else
                    np.full(req["num"], 0 if mode == "major" else 1)),
             bpm=mood_lib.BASE_BPM, register=0)


async def run(work, m, req):
  return await work.music(m.name, req["seed"], req["modes"], req["key_guidance"])


def _piece(tokens, kind: str, instruments: str = "choir", bpm: float = mood_lib.BASE_BPM) -> bytes:
  """MIDI (a track and GM program per voice) or WAV (FluidSynth when installed)."""
  buf = io.BytesIO()
  roll = enc.tokens_to_roll(tokens)
  if kind == "midi":
    render.voiced_midi_file(roll, render.parse_instruments(instruments), bpm).save(file=buf)
  else:
    render.write_audio(buf, render.render_audio(roll, instruments, bpm)[0])
  return buf.getvalue()


def encode_music(tokens, fmt: str, instruments: str = "choir", bpm: float = mood_lib.BASE_BPM,
                 register: int = 0) -> bytes:
  """One piece (midi, wav) or a zip of each piece's MIDI and WAV; `register`: every piece
  moved by that many semitones first (a mood's register)."""
  if register:
    tokens = np.asarray(enc.transpose_clipped(np.asarray(tokens), register))
  if fmt in ("midi", "wav"):
    return _piece(tokens[0], fmt, instruments, bpm)
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w") as z:
    for i, row in enumerate(tokens):
      z.writestr(f"piece_{i:03d}.mid", _piece(row, "midi", instruments, bpm))
      z.writestr(f"piece_{i:03d}.wav", _piece(row, "wav", instruments, bpm))
  return buf.getvalue()


GENERATE = Endpoint(
    KIND, parse, run,
    lambda tokens, m, req: (encode_music(tokens, req["format"], req["instruments"], req["bpm"],
                                         req["register"]), req["format"]))
