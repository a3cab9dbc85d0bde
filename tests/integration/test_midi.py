"""`midi:PATH` (artjax.tasks.midi, artjax.music.data.midi_folder): a folder the test writes -
pieces with a piano, a violin and a drum track in 3/4 and 4/4, a corrupt file, a file without
notes, a MusicXML score - tokenised by miditok, trained, sampled to MIDI, evaluated."""

import json
import zipfile

import numpy as np
import pytest

from artjax import ConfigError
from helpers import run_cli


def write_folder(out, pieces: int = 12):
  import symusic
  from music21 import meter, note, stream
  rng = np.random.default_rng(0)
  (out / "sub").mkdir(parents=True)
  scale = [0, 2, 4, 5, 7, 9, 11]
  for i in range(pieces):
    s = symusic.Score(480)
    s.tempos.append(symusic.Tempo(0, 90 + 10 * (i % 4)))
    s.time_signatures.append(symusic.TimeSignature(0, 3 if i % 3 == 0 else 4, 4))
    for prog, lo in ((0, 48), (40, 67)):
      t = symusic.Track(program=prog, is_drum=False)
      for k in range(32):
        p = lo + scale[rng.integers(7)] + 12 * rng.integers(2)
        t.notes.append(symusic.Note(time=k * 240, duration=240, pitch=int(p), velocity=int(rng.integers(50, 110))))
      s.tracks.append(t)
    d = symusic.Track(program=0, is_drum=True)
    for k in range(32):
      d.notes.append(symusic.Note(time=k * 240, duration=120, pitch=36 if k % 2 == 0 else 38, velocity=100))
    s.tracks.append(d)
    s.dump_midi(str(out / ("sub" if i % 2 else "") / f"piece{i:02d}.mid"))
  (out / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
  silent = symusic.Score(480)
  silent.tracks.append(symusic.Track(program=0))
  silent.dump_midi(str(out / "silent.mid"))
  st = stream.Stream()
  st.append(meter.TimeSignature("4/4"))
  for p in "C4 D4 E4 F4 G4 A4 B4 C5".split():
    st.append(note.Note(p, quarterLength=1))
  st.write("musicxml", fp=str(out / "scale.musicxml"))
  return out


@pytest.fixture(scope="module")
def midi_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("midi")
  folder = write_folder(root / "music")
  wd = root / "run"
  r = run_cli("train", "--config=configs/music.py:smoke", f"--config.data.name=midi:{folder}",
              f"--config.data.data_dir={root / 'data'}", f"--workdir={wd}")
  assert r.returncode == 0, r.stderr[-2000:]
  return folder, wd, r


def test_a_folder_trains_with_corrupt_and_silent_files_skipped_in_one_warning(midi_run):
  from artjax.music.data import midi_folder
  folder, wd, r = midi_run
  warn = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
  assert warn == ["warning: skipped 2 of 15 files that are unreadable or have no notes "
                  "(corrupt.mid, silent.mid)"], r.stderr[-1000:]
  ds = midi_folder.prepare(f"midi:{folder}", "REMI", str(wd.parent / "data"))
  assert len(ds["names"]) == 13 and "scale.musicxml" in set(ds["names"])
  assert {"train", "validation", "test"} <= set(ds["split"])
  tok = midi_folder.tokenizer("REMI")
  words = {tok[int(t)].split("_")[0] for t in ds["tokens"]}
  assert {"Program", "PitchDrum", "Tempo", "TimeSig", "Velocity", "Pitch"} <= words


def test_samples_are_midi_with_each_tracks_program_and_eval_has_the_markov_baseline(midi_run, tmp_path):
  import symusic
  folder, wd, _ = midi_run
  r = run_cli("sample", f"--workdir={wd}", "--num=6", "--seed=1", f"--out={tmp_path / 's'}",
              "--temperature=0.8", "--max_tokens=64")
  assert r.returncode == 0, r.stderr[-1000:]
  assert np.load(tmp_path / "s" / "samples.npz")["tokens"].shape == (6, 64)
  for mid in (tmp_path / "s").glob("*.mid"):
    assert symusic.Score(str(mid)).note_num() > 0
  r = run_cli("eval", f"--workdir={wd}", "--num=4")
  assert r.returncode == 0, r.stderr[-1000:]
  ev = json.load(open(wd / "eval.json"))
  b = ev["bits_per_token"]
  assert b["scored_tokens"] > 0 and b["kneser_ney_4gram"] > 0 and b["model"] > 0
  assert ev["held_out"]["with_drums"] == 1.0 and ev["held_out"]["programs"] == [0, 40]


def test_bad_midi_datasets_are_one_line_before_anything_is_written(tmp_path, midi_run):
  from artjax.music.data import midi_folder
  folder, _, _ = midi_run
  (tmp_path / "empty").mkdir()
  with pytest.raises(ConfigError, match="no .mid/.midi"):
    midi_folder.prepare(f"midi:{tmp_path / 'empty'}", "REMI", str(tmp_path / "data"))
  with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
    z.writestr("../up.mid", b"MThd")
  with pytest.raises(ConfigError, match="outside itself"):
    midi_folder.check(f"midi:{tmp_path / 'evil.zip'}", "REMI")
  with pytest.raises(ConfigError, match="data.tokenizer"):
    midi_folder.check(f"midi:{folder}", "BPE")
  with pytest.raises(ConfigError, match="corrupt.mid is unreadable"):
    midi_folder.prepare(f"midi:{folder}", "TSD", str(tmp_path / "data"), strict=True)
  assert not (tmp_path / "data").exists()
  r = run_cli("train", "--config=configs/music.py:smoke", f"--config.data.name=midi:{tmp_path / 'nope'}",
              f"--workdir={tmp_path / 'w'}")
  assert r.returncode == 2 and r.stderr.count("error:") == 1 and not (tmp_path / "w").exists()
  r = run_cli("sample", f"--workdir={midi_run[1]}", "--num=1", f"--out={tmp_path / 'm'}", "--mood=0.5,0.5")
  assert r.returncode == 2 and "--mood does not apply" in r.stderr and r.stderr.count("error:") == 1


def test_export_works_and_serving_refuses_a_midi_run_in_one_line(midi_run, tmp_path):
  from artjax.serve import models
  _, wd, _ = midi_run
  r = run_cli("export", f"--workdir={wd}", f"--out={tmp_path / 'exp'}")
  assert r.returncode == 0, r.stderr[-1000:]
  manifest = json.load(open(tmp_path / "exp" / "manifest.json"))
  assert [i["name"] for i in manifest["inputs"]] == ["seed", "prompt"]
  with pytest.raises(ConfigError, match="a user's MIDI"):
    models.load(str(tmp_path / "exp"), "m", max_num=4, max_batch=4, max_music=4)


def test_music21_corpora_are_named_datasets_and_repeated_tunes_are_kept_once(tmp_path):
  import symusic
  from artjax.music.data import midi_folder
  with pytest.raises(ConfigError, match="music21:folk"):
    midi_folder.check("music21:jazz", "REMI")
  midi_folder.check("music21:folk", "REMI")
  found = midi_folder.listing(midi_folder.path_of("music21:folk"), midi_folder.subdirs_of("music21:folk"))
  assert {f[0].split("/")[0] for f in found} >= {"ryansMammoth", "essenFolksong"} and len(found) > 1000
  s = symusic.Score(480)
  t = symusic.Track(program=0)
  for k, p in enumerate([60, 62, 64, 65, 67, 65, 64, 62]):
    t.notes.append(symusic.Note(time=k * 480, duration=480, pitch=p, velocity=80))
  s.tracks.append(t)
  up = s.copy()
  up.tracks[0].notes = [symusic.Note(n.time, n.duration, n.pitch + 5, 60) for n in s.tracks[0].notes]
  up.tracks[0].program = 40
  assert midi_folder.tune_key(s) == midi_folder.tune_key(up)          # transposed, re-voiced
  other = s.copy()
  other.tracks[0].notes[3] = symusic.Note(3 * 480, 480, 66, 80)
  assert midi_folder.tune_key(other) != midi_folder.tune_key(s)


@pytest.mark.slow   # 7 s (spawned workers): make test-slow
def test_a_pool_of_workers_prepares_the_same_dataset(midi_run, tmp_path, monkeypatch):
  from artjax.music.data import midi_folder
  folder, wd, _ = midi_run
  serial = midi_folder.prepare(f"midi:{folder}", "REMI", str(wd.parent / "data"))
  monkeypatch.setattr(midi_folder, "POOL_FROM", 2)
  monkeypatch.setattr(midi_folder.os, "cpu_count", lambda: 2)
  pooled = midi_folder.prepare(f"midi:{folder}", "REMI", str(tmp_path / "data"))
  for k in ("tokens", "offsets", "split", "names"):
    assert np.array_equal(serial[k], pooled[k]), k


BOOK = """X:1
T:Repeated Jig
M:6/8
L:1/8
K:D
|:DFA dAF|GBd gdB:|
|:faf ede|fdB AFD:|

X:2
T:Plain Reel
M:4/4
L:1/8
K:G
GABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA|

X:3
T:Der Graf von Rom (Essen A0007, two lines: one time signature in several bars)
M:4/2
L:1/4
K:G
G2 | G2G2B2G2 | d4d4z2
d2 | e2d2=f2d2 | e4d4z2
"""


def test_a_book_of_tunes_is_read_as_written_and_an_absurd_tune_in_it_is_skipped(tmp_path, monkeypatch, capsys):
  from artjax.music.data import midi_folder
  (tmp_path / "book").mkdir()
  (tmp_path / "book" / "book.abc").write_text(BOOK)
  scores = midi_folder.scores_of(BOOK.encode(), "book.abc")
  assert [s.note_num() for s in scores] == [24, 27, 14]   # each repeat once, as written
  _, read = midi_folder.read_one(str(tmp_path / "book"), "book.abc", "REMI")
  lengths = [len(ids) for _, ids in read]
  monkeypatch.setattr(midi_folder, "MAX_PIECE_TOKENS", (lengths[0] + lengths[1]) // 2)
  longer = int(np.argmax(lengths[:2]))
  _, read = midi_folder.read_one(str(tmp_path / "book"), "book.abc", "REMI")
  assert read[longer] == (None, None) and read[1 - longer][1] is not None
  with pytest.raises(ConfigError, match=f"book.abc#{longer} is unreadable or over"):
    midi_folder.prepare(f"midi:{tmp_path / 'book'}", "REMI", str(tmp_path / "data"), strict=True)
  assert not (tmp_path / "data").exists()
  ds = midi_folder.prepare(f"midi:{tmp_path / 'book'}", "REMI", str(tmp_path / "data"))
  assert sorted(ds["names"]) == sorted(f"book.abc#{i}" for i in (1 - longer, 2))
  assert "skipped 0 of 1 files that are unreadable or have no notes and 1 tunes of a book" in capsys.readouterr().err
