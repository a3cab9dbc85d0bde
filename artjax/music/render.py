"""Piano rolls out to files people can listen to and look at: MIDI, WAV and PNG.

Rolls are uint8 [T, 88] at quarter-note frames (key 0 = MIDI 21). A key active in
consecutive frames is one held note (the piano-roll convention of the JSB benchmark), so
roll -> MIDI -> roll is exact.
"""

from __future__ import annotations

import wave

import numpy as np

LOWEST = 21
TICKS_PER_BEAT = 480
SAMPLE_RATE = 44100


def notes_of(roll) -> list[tuple[int, int, int]]:
  """(midi pitch, start frame, end frame) for each run of a key, sorted by start."""
  roll = np.asarray(roll) > 0
  padded = np.pad(roll, ((1, 1), (0, 0)))
  diff = np.diff(padded.astype(np.int8), axis=0)
  notes = []
  for k in range(roll.shape[1]):
    starts, ends = np.flatnonzero(diff[:, k] == 1), np.flatnonzero(diff[:, k] == -1)
    notes.extend((LOWEST + k, int(s), int(e)) for s, e in zip(starts, ends))
  return sorted(notes, key=lambda n: (n[1], n[0]))


def write_midi(path, roll, bpm: float = 80.0, velocity: int = 80) -> None:
  """`path`: a file name or a binary file object."""
  mid = midi_file(roll, bpm, velocity)
  if isinstance(path, str):
    mid.save(path)
  else:
    mid.save(file=path)


def midi_file(roll, bpm: float = 80.0, velocity: int = 80):
  """A mido.MidiFile of the piano roll (one organ track)."""
  import mido
  events = []
  for pitch, s, e in notes_of(roll):
    events.append((s * TICKS_PER_BEAT, 1, pitch))   # note-offs (0) before note-ons (1) at a tick
    events.append((e * TICKS_PER_BEAT, 0, pitch))
  events.sort()
  mid = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
  track = mido.MidiTrack()
  mid.tracks.append(track)
  track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
  track.append(mido.Message("program_change", program=19, time=0))   # church organ
  now = 0
  for tick, on, pitch in events:
    kind = "note_on" if on else "note_off"
    track.append(mido.Message(kind, note=pitch, velocity=velocity if on else 0, time=tick - now))
    now = tick
  track.append(mido.MetaMessage("end_of_track", time=0))
  return mid


def read_midi(path: str) -> np.ndarray:
  """A MIDI file back to a quarter-note roll (notes quantised to whole beats)."""
  import mido
  mid = mido.MidiFile(path)
  tpb = mid.ticks_per_beat
  notes, open_ = [], {}
  for track in mid.tracks:
    tick = 0
    for msg in track:
      tick += msg.time
      if msg.type == "note_on" and msg.velocity > 0:
        open_[msg.note] = tick
      elif msg.type in ("note_off", "note_on") and msg.note in open_:
        notes.append((msg.note, open_.pop(msg.note), tick))
  length = max((int(round(e / tpb)) for _, _, e in notes), default=0)
  roll = np.zeros((length, 88), np.uint8)
  for pitch, s, e in notes:
    roll[int(round(s / tpb)):int(round(e / tpb)), pitch - LOWEST] = 1
  return roll


def synthesize(roll, bpm: float = 80.0, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
  """A simple additive organ-like synthesiser: float32 mono samples in [-1, 1].

  Each note: fundamental plus 2 harmonics, an attack-decay-sustain-release envelope
  (10 ms, 120 ms to 70%, release 150 ms after the note ends)."""
  beat = 60.0 / bpm
  notes = notes_of(roll)
  total = int((len(roll) * beat + 0.5) * sample_rate)
  out = np.zeros(total, np.float32)
  a, d, sus, rel = 0.01, 0.12, 0.7, 0.15
  for pitch, s, e in notes:
    f = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    dur = (e - s) * beat
    n = int((dur + rel) * sample_rate)
    t = np.arange(n, dtype=np.float32) / sample_rate
    tone = (np.sin(2 * np.pi * f * t) + 0.5 * np.sin(4 * np.pi * f * t)
            + 0.25 * np.sin(6 * np.pi * f * t)) / 1.75
    env = np.where(t < a, t / a, np.where(t < a + d, 1.0 - (1.0 - sus) * (t - a) / d, sus))
    env = np.where(t > dur, env * np.clip(1.0 - (t - dur) / rel, 0.0, 1.0), env)
    start = int(s * beat * sample_rate)
    seg = out[start:start + n]
    seg += (tone * env)[:len(seg)].astype(np.float32)
  peak = float(np.max(np.abs(out))) if len(out) else 0.0
  return out * (0.9 / peak) if peak > 0 else out


def write_wav(path, roll, bpm: float = 80.0, sample_rate: int = SAMPLE_RATE) -> None:
  pcm = np.round(synthesize(roll, bpm, sample_rate) * 32767).astype("<i2")
  with wave.open(path, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(sample_rate)
    w.writeframes(pcm.tobytes())


def roll_image(roll, px_frame: int = 6, px_key: int = 3) -> np.ndarray:
  """uint8 [88*px_key, T*px_frame, 3]: high keys at the top, beats marked every bar."""
  roll = np.asarray(roll) > 0
  img = np.full((roll.shape[1], roll.shape[0], 3), 255, np.uint8)
  img[(np.arange(88) % 12 == 3)[::-1]] = 235        # a C row, for orientation
  img[roll.T[::-1]] = (30, 30, 120)
  img = img.repeat(px_key, 0).repeat(px_frame, 1)
  img[:, ::4 * px_frame] = np.minimum(img[:, ::4 * px_frame], 200)   # bar lines (4/4)
  return img
