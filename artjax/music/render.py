"""Piano rolls out to files people can listen to and look at: MIDI, WAV and PNG.

Rolls are uint8 [T, 88] at quarter-note frames (key 0 = MIDI 21). A key active in
consecutive frames is one held note (the piano-roll convention of the JSB benchmark), so
roll -> MIDI -> roll is exact.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
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


# --- real instruments: General MIDI programs per voice, rendered by FluidSynth ----------
#: instrument names -> General MIDI program (0-based)
GM_PROGRAMS = {"piano": 0, "harpsichord": 6, "organ": 19, "guitar": 24, "violin": 40,
               "viola": 41, "cello": 42, "contrabass": 43, "strings": 48, "choir": 52,
               "voice": 53, "trumpet": 56, "trombone": 57, "tuba": 58, "horn": 60,
               "brass": 61, "oboe": 68, "bassoon": 70, "clarinet": 71, "flute": 73,
               "recorder": 74}
#: a chorale's voices from the top: soprano, alto, tenor, bass (more notes: the bass's)
VOICES = ("soprano", "alto", "tenor", "bass")
AUDIO_FORMATS = ("wav", "ogg", "mp3")
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
TARGET_RMS_DBFS = -20.0     # loudness every rendering is normalised to (peaks kept < -1 dBFS)


def parse_instruments(text: str) -> tuple[int, ...]:
  """"choir" or "violin,viola,cello,contrabass" (soprano..bass) -> 4 GM programs; a
  ValueError naming the unknown instrument."""
  names = [n.strip().lower() for n in str(text).split(",") if n.strip()]
  if not 1 <= len(names) <= len(VOICES):
    raise ValueError(f"instruments: 1 to {len(VOICES)} names (soprano..bass), got {text!r}")
  bad = [n for n in names if n not in GM_PROGRAMS]
  if bad:
    raise ValueError(f"unknown instrument {bad[0]!r}; choose from {', '.join(GM_PROGRAMS)}")
  names += [names[-1]] * (len(VOICES) - len(names))
  return tuple(GM_PROGRAMS[n] for n in names)


def check_sample(sample) -> None:
  """A config's `sample.instruments` and `sample.audio` (when present): a ConfigError naming
  the bad one, before anything is drawn."""
  from artjax import ConfigError
  try:
    parse_instruments(sample.get("instruments", "choir"))
  except ValueError as e:
    raise ConfigError(f"sample.instruments: {e}") from None
  if sample.get("audio", "wav") not in AUDIO_FORMATS:
    raise ConfigError(f"sample.audio={sample.get('audio')!r}: choose one of {AUDIO_FORMATS}")


def voices_of(roll) -> list[list[tuple[int, int, int]]]:
  """The notes split into SATB voices: a note belongs to the voice of its rank (from the top)
  among the notes sounding when it starts; ranks past the tenor go to the bass."""
  notes = notes_of(roll)
  out = [[] for _ in VOICES]
  for pitch, s, e in notes:
    above = sum(1 for p, s2, e2 in notes if s2 <= s < e2 and p > pitch)
    out[min(above, len(VOICES) - 1)].append((pitch, s, e))
  return out


def voiced_midi_file(roll, programs, bpm: float = 80.0, velocity: int = 80):
  """A mido.MidiFile with one track and channel per voice, each with its GM program; read
  back (read_midi) it is the same roll."""
  import mido
  mid = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
  for ch, (notes, program) in enumerate(zip(voices_of(roll), programs)):
    track = mido.MidiTrack()
    mid.tracks.append(track)
    if ch == 0:
      track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    track.append(mido.MetaMessage("track_name", name=VOICES[ch], time=0))
    track.append(mido.Message("program_change", channel=ch, program=program, time=0))
    events = sorted([(s * TICKS_PER_BEAT, 1, p) for p, s, e in notes] +
                    [(e * TICKS_PER_BEAT, 0, p) for p, s, e in notes])
    now = 0
    for tick, on, pitch in events:
      track.append(mido.Message("note_on" if on else "note_off", channel=ch, note=pitch,
                                velocity=velocity if on else 0, time=tick - now))
      now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
  return mid


def soundfont() -> str | None:
  return next((p for p in SOUNDFONTS if os.path.exists(p)), None)


def fluidsynth_available() -> bool:
  return shutil.which("fluidsynth") is not None and soundfont() is not None


def normalise(pcm: np.ndarray) -> np.ndarray:
  """float samples scaled to TARGET_RMS_DBFS, peaks limited to -1 dBFS."""
  rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0
  if rms == 0.0:
    return pcm.astype(np.float32)
  gain = 10 ** (TARGET_RMS_DBFS / 20) / rms
  peak = float(np.max(np.abs(pcm))) * gain
  gain *= min(1.0, 10 ** (-1 / 20) / peak) if peak > 0 else 1.0
  return (pcm * gain).astype(np.float32)


def _fluidsynth(roll, programs, bpm, sample_rate) -> np.ndarray:
  """float32 [N, 2] stereo samples of the voiced MIDI rendered by FluidSynth."""
  with tempfile.TemporaryDirectory() as d:
    mid = os.path.join(d, "in.mid")
    voiced_midi_file(roll, programs, bpm).save(mid)
    return fluidsynth_file(mid, sample_rate)


def fluidsynth_file(mid: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
  """float32 [N, 2] stereo samples of a MIDI file rendered by FluidSynth (its tracks' own
  General MIDI programs, drums on channel 10)."""
  with tempfile.TemporaryDirectory() as d:
    wav = os.path.join(d, "out.wav")
    r = subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(sample_rate), "-F", wav,
                        soundfont(), mid], capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or not os.path.exists(wav):
      raise RuntimeError(f"fluidsynth failed: {(r.stderr or r.stdout).strip()[:300]}")
    with wave.open(wav, "rb") as w:
      ch, width, n = w.getnchannels(), w.getsampwidth(), w.getnframes()
      raw = w.readframes(n)
  dtype = {2: "<i2", 4: "<i4"}[width]
  pcm = np.frombuffer(raw, dtype).astype(np.float32) / float(2 ** (8 * width - 1))
  return pcm.reshape(-1, ch)


def render_audio(roll, instruments: str = "choir", bpm: float = 80.0,
                 sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, str]:
  """(float32 samples [N, C], loudness-normalised; the renderer used): FluidSynth with the
  General MIDI SoundFont when installed, else the built-in synthesiser (mono)."""
  programs = parse_instruments(instruments)
  if fluidsynth_available():
    return normalise(_fluidsynth(roll, programs, bpm, sample_rate)), "fluidsynth"
  return normalise(synthesize(roll, bpm, sample_rate)[:, None]), "numpy"


FALLBACK_NOTE = ("note: FluidSynth or the GM SoundFont is missing (apt-get install fluidsynth "
                 "fluid-soundfont-gm): audio rendered by the built-in synthesiser")


def write_audio(path, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
  """float samples [N, C] -> .wav, or through ffmpeg (imageio-ffmpeg's) .ogg / .mp3.
  `path` may be a binary file object (WAV)."""
  ext = "wav" if not isinstance(path, str) else os.path.splitext(path)[1].lower().lstrip(".")
  if ext not in AUDIO_FORMATS:
    raise ValueError(f"audio files are {', '.join(AUDIO_FORMATS)}, got {path!r}")
  pcm16 = np.round(np.clip(pcm, -1, 1) * 32767).astype("<i2")
  if ext == "wav":
    with wave.open(path, "wb") as w:
      w.setnchannels(pcm16.shape[1])
      w.setsampwidth(2)
      w.setframerate(sample_rate)
      w.writeframes(pcm16.tobytes())
    return
  import imageio_ffmpeg
  codec = ["-c:a", "libvorbis", "-q:a", "5"] if ext == "ogg" else ["-c:a", "libmp3lame", "-b:a", "192k"]
  cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "s16le", "-ar",
         str(sample_rate), "-ac", str(pcm16.shape[1]), "-i", "-", *codec, path]
  r = subprocess.run(cmd, input=pcm16.tobytes(), capture_output=True, timeout=600)
  if r.returncode != 0:
    raise RuntimeError(f"ffmpeg could not write {path}: {r.stderr.decode(errors='replace')[:300]}")


def save_piece(base: str, roll, instruments: str = "choir", audio: str = "wav",
               bpm: float = 80.0) -> str:
  """base.mid (a track and GM program per voice) and base.<audio> (rendered, normalised);
  returns the renderer used ("fluidsynth" or "numpy")."""
  voiced_midi_file(roll, parse_instruments(instruments), bpm).save(base + ".mid")
  pcm, how = render_audio(roll, instruments, bpm)
  write_audio(f"{base}.{audio}", pcm)
  return how
