"""Mood through the model (#32 point 1): key-normalised chorales (every piece moved to C, the
mode token the only key information left), samples moved to the asked tonic afterwards, and a
second test of mode that reads chord qualities instead of the pitch-class profile."""

import jax
import numpy as np
import pytest

from helpers import music_config, run_cli
from artjax import ConfigError
from artjax.music import encoding as enc
from artjax.music import metrics as mus
from artjax.tasks import build_task


def test_tonic_shift_is_the_nearest_way_to_c():
  shifts = np.asarray([enc.tonic_shift(t) for t in range(12)])
  assert all((t + s) % 12 == 0 for t, s in enumerate(shifts))
  assert shifts.min() == -5 and shifts.max() == 6 and shifts[0] == 0 and shifts[2] == -2


def test_key_normalised_splits_are_the_chorales_moved_to_c(chorales):
  task = build_task(music_config("keynorm"))
  rows, modes = task.split_tokens("train")
  tr = chorales.splits["train"]
  np.testing.assert_array_equal(modes, tr["mode"])
  moved = [enc.tokens_to_roll(r) for r in rows]
  assert sum(int(r.sum()) for r in moved) == sum(int(r.sum()) for r in tr["rolls"])  # no note lost
  np.testing.assert_allclose(enc.pitch_class_profiles(moved, np.zeros(len(moved), int), modes),
                             enc.pitch_class_profiles(tr["rolls"], tr["tonic"], tr["mode"]))
  for roll, orig, tonic in zip(moved[:20], tr["rolls"][:20], tr["tonic"][:20]):
    np.testing.assert_array_equal(roll, enc.shift_roll(orig, int(enc.tonic_shift(tonic))))


def test_samples_are_played_in_c_and_moved_to_the_asked_tonic(chorales):
  task = build_task(music_config("keynorm"))
  state = task.init_state(0)
  out = {}
  for tonic in (0, 2, 9):
    task.config.sample.tonic = tonic
    out[tonic] = np.asarray(jax.jit(task.sample, static_argnums=2)(state, 5, 4)["tokens"])
  keys = out[0] < enc.NUM_KEYS
  assert keys.sum() > 20
  for tonic, shift in ((2, 2), (9, -3)):         # D: up a tone; A: down a minor third
    np.testing.assert_array_equal(out[tonic][~keys], out[0][~keys])
    np.testing.assert_array_equal(out[tonic][keys], np.clip(out[0][keys] + shift, 0, 87))


def test_key_normalise_refuses_random_transposition(tmp_path):
  c = music_config("keynorm")
  c.data.transpose = 5
  with pytest.raises(ConfigError, match="data.key_normalise .* needs data.transpose=0"):
    build_task(c)
  r = run_cli("train", "--config=configs/music.py:keynorm,smoke", "--config.data.transpose=3",
              f"--workdir={tmp_path / 'w'}")
  assert r.returncode == 2 and "data.transpose=0" in r.stderr and not (tmp_path / "w").exists()


def test_chord_quality_mode_test_reads_triads_not_profiles(chorales):
  test = mus.ChordModeTest(chorales.rolls("train"), chorales.modes("train"))
  assert test.accuracy(chorales.rolls("test"), chorales.modes("test")) >= 0.8
  roll = np.zeros((8, 88), np.uint8)
  major, minor = roll.copy(), roll.copy()
  for f in range(8):                              # C-E-G vs C-Eb-G, same pitch range
    major[f, [39, 43, 46]] = 1
    minor[f, [39, 42, 46]] = 1
  np.testing.assert_allclose(mus.triad_shares(major), [1, 0, 0])
  np.testing.assert_allclose(mus.triad_shares(minor), [0, 1, 0])
  assert test.minor([major, minor]).tolist() == [False, True]
