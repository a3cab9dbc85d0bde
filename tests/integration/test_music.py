"""Music: chorale data, token encoding, MIDI/WAV, the Transformer, its NLL and sampler."""

import json
import logging
import os
import wave

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from artjax.music.data.chorales import chorales_builder, parse
from artjax.music import encoding as enc, render, sampling
from helpers import music_config, run_cli


def test_chorales_split_and_contents(chorales):
  n = {k: len(chorales.rolls(k)) for k in ("train", "validation", "test")}
  assert n == {"train": 210, "validation": 80, "test": 60}   # documented (docs/music.md)
  bwv = {k: set(chorales.splits[k]["bwv"][:, 0].tolist()) for k in n}
  assert not (bwv["train"] & bwv["test"]) and not (bwv["train"] & bwv["validation"])
  assert {chorales_builder.split_of(b) for b in bwv["test"]} == {"test"}
  for roll, voices in zip(chorales.rolls("train")[:20], chorales.splits["train"]["voices"][:20]):
    assert len(voices) == 4 * len(roll)
    assert roll.sum(1).max() <= 4          # four voices at most
    np.testing.assert_array_equal(parse.roll_of(voices), roll)
  modes = np.concatenate([chorales.modes(k) for k in n])
  assert 0.3 < modes.mean() < 0.7          # both modes well represented


def test_encoding_round_trip_through_midi(chorales, tmp_path):
  for roll in chorales.rolls("test")[:5]:
    toks = enc.roll_to_tokens(roll)
    assert np.sum(toks == enc.EOF) == len(roll)
    back = enc.tokens_to_roll(toks)
    np.testing.assert_array_equal(back, roll)
    path = str(tmp_path / "x.mid")
    render.write_midi(path, back)
    midi_roll = render.read_midi(path)
    last = np.flatnonzero(roll.any(1)).max() + 1       # MIDI ends at the last note-off
    np.testing.assert_array_equal(midi_roll, roll[:last])
  # keys inside each frame ascend, so a frame has exactly one token sequence
  toks = enc.roll_to_tokens(chorales.rolls("test")[0])
  frames = np.split(toks, np.flatnonzero(toks == enc.EOF) + 1)[:-1]
  assert all(np.all(np.diff(f[:-1]) > 0) for f in frames)


def test_wav_is_44k_16bit_with_notes(chorales, tmp_path):
  roll = chorales.rolls("test")[0][:8]
  path = str(tmp_path / "x.wav")
  render.write_wav(path, roll, bpm=120)
  with wave.open(path) as w:
    assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (44100, 2, 1)
    pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
  assert len(pcm) == int((8 * 0.5 + 0.5) * 44100)
  assert np.abs(pcm).max() > 20000
  # the fundamental of the top note of the first frame is in the spectrum
  top = 21 + np.flatnonzero(roll[0]).max()
  seg = pcm[2000:2000 + 8192].astype(np.float64)
  spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
  freqs = np.fft.rfftfreq(len(seg), 1 / 44100)
  f0 = 440 * 2 ** ((top - 69) / 12)
  near = np.abs(freqs - f0) < 6
  assert spec[near].max() > 0.1 * spec.max()


def test_corrupt_musicxml_is_skipped_with_a_warning(tmp_path, caplog):
  bad = tmp_path / "bwv999.xml"
  bad.write_text("<score-partwise><part id='P1'><measure>not music")
  with caplog.at_level(logging.WARNING):
    ok, skipped = chorales_builder.collect(["bach/bwv269", str(bad)], processes=1)
  assert [p for p, _ in ok] == ["bach/bwv269"] and [p for p, _ in skipped] == [str(bad)]
  assert "skipping chorale" in caplog.text and "skipped 1 of 2" in caplog.text


def _task_and_state(arg="default", **kw):
  from artjax.tasks import build_task
  c = music_config(arg, **kw)
  task = build_task(c)
  return task, task.init_state(0)


@pytest.mark.slow   # 3.5 s: make test-slow
def test_nll_equals_brute_force_prefix_by_prefix(chorales):
  task, state = _task_and_state()
  toks = enc.roll_to_tokens(chorales.rolls("test")[0][:6])
  seq = np.asarray(enc.prefix_tokens(1) + toks.tolist(), np.int32)
  model = task.model(state["params"])
  # Every prefix seq[:j] as its own row (PAD after it; causality is tested below), one batch.
  rows = np.full((len(seq) - 2, len(seq)), enc.PAD, np.int32)
  for j in range(2, len(seq)):
    rows[j - 2, :j] = seq[:j]
  all_logits = np.asarray(jax.jit(model)(jnp.asarray(rows))).astype(np.float64)
  brute = 0.0
  for j in range(2, len(seq)):   # every key / EOF token given everything before it
    logits = all_logits[j - 2, j - 1]
    prev = seq[j - 1]
    allowed = [k for k in range(enc.VOCAB)
               if k == enc.EOF or (k < enc.NUM_KEYS and (prev >= enc.NUM_KEYS or k > prev))]
    z = np.log(np.sum(np.exp(logits[allowed] - logits[allowed].max()))) + logits[allowed].max()
    brute += z - logits[seq[j]]
  from artjax.music.encoding import eval_windows
  ins, tgts, score, frames = eval_windows([toks], [seq[:2]], 64)
  assert frames == 6 and score.sum() == len(toks)
  total = float(task.nll_of_windows(state, ins, tgts, score))
  np.testing.assert_allclose(total, brute, rtol=1e-4)
  # sliding windows shorter than the sequence still score every token exactly once
  long = enc.roll_to_tokens(chorales.rolls("test")[1])
  ins, tgts, score, frames = eval_windows([long], [seq[:2]], 32)
  assert len(ins) > 2 and score.sum() == len(long)


@pytest.mark.parametrize("every", [pytest.param(False, marks=pytest.mark.slow), True])   # False: make test-slow
def test_kv_cache_sampler_equals_full_recomputation(every):
  """Also with the mode token added at every position (model.cond_every: the cache carries
  it) and with classifier-free guidance (its unconditional half carries NOMODE)."""
  task, state = _task_and_state()
  if every:
    task.config.model.cond_every = True
    task.validate()
    state = task.init_state(0)
  model = task.model(state["params"])
  prompt, _ = task.prompt(3)
  key = jax.random.key(5)
  kw = dict(temperature=1.0, top_p=0.9, max_frames=6)
  cached = jax.jit(lambda k: sampling.sample_cached(model, prompt, 40, k, **kw))(key)
  full = jax.jit(lambda k: sampling.sample_recompute(model, prompt, 40, k, **kw))(key)
  np.testing.assert_array_equal(cached, full)
  if every:   # the mode changes every position's logits, and guidance still matches
    other = prompt.at[:, 1].set(enc.NOMODE)
    a, b = (np.asarray(model(p)) for p in (jnp.concatenate([prompt, cached[:, :8]], 1),
                                            jnp.concatenate([other, cached[:, :8]], 1)))
    assert np.all(np.abs(a - b).max(-1)[:, 2:] > 1e-3)
    kw.update(guidance=2.0, uncond_prompt=other)
    cached = jax.jit(lambda k: sampling.sample_cached(model, prompt, 40, k, **kw))(key)
    full = jax.jit(lambda k: sampling.sample_recompute(model, prompt, 40, k, **kw))(key)
    np.testing.assert_array_equal(cached, full)
  for row in np.asarray(cached):   # at most 6 frames, keys ascending inside frames
    assert np.sum(row == enc.EOF) <= 6
    frames = np.split(row[row != enc.PAD], np.flatnonzero(row[row != enc.PAD] == enc.EOF) + 1)
    assert all(np.all(np.diff(f[f < enc.NUM_KEYS]) > 0) for f in frames)


def test_short_training_lowers_test_nll(music_workdir):
  """The session's trained model (40 steps, conftest) against its own initial state."""
  import json
  from artjax.tasks.music_report import test_nll_per_frame
  from artjax.tasks import open_run as load_state
  task, state = load_state(music_workdir)
  before, frames = test_nll_per_frame(task, task.init_state(task.config.seed))
  after, _ = test_nll_per_frame(task, state)
  assert frames > 1000
  assert after < before - 1.5, (before, after)        # measured: 20.8 -> 18.7
  assert json.load(open(os.path.join(music_workdir, "summary.json")))["nll_per_frame"] < before


def test_transposition_shifts_whole_windows_and_keeps_keys_on_the_piano(chorales):
  """data.transpose moves every key of a window by one shift in [-T, T] (and nothing else),
  keeps the keys on the piano, and really moves them (shifts of many sizes)."""
  task, _ = _task_and_state()
  data = task.device_data()
  data["train_size"] = len(data["train"]["tokens"])

  def batches(transpose):
    task.config.data.transpose = transpose
    return np.concatenate([np.asarray(task.batch(jax.random.key(i), data)) for i in range(10)])
  plain, seqs = batches(0), batches(12)
  is_key = plain < enc.NUM_KEYS
  np.testing.assert_array_equal(is_key, seqs < enc.NUM_KEYS)   # the same windows: keys move
  np.testing.assert_array_equal(plain[~is_key], seqs[~is_key])
  shifts = []
  for moved, orig, k in zip(seqs, plain, is_key):
    row = set((moved[k] - orig[k]).tolist())
    assert len(row) <= 1, row                                  # one shift per window
    shifts += list(row)
  assert all(-12 <= s <= 12 for s in shifts) and len(set(shifts)) >= 8, sorted(set(shifts))
  keys = seqs[seqs < enc.NUM_KEYS]
  assert keys.min() >= 0 and keys.max() <= 87
  assert seqs[:, 0].tolist() == [enc.BOS] * len(seqs)
  assert set(seqs[:, 1]) == set(enc.MODE_TOKENS) | {enc.NOMODE}   # mode, or dropped for guidance


@pytest.mark.parametrize("start_prob", [0.0, 0.5, 1.0])
def test_windows_open_at_the_first_frame_with_start_prob(chorales, start_prob):
  task, _ = _task_and_state()
  task.config.data.update(transpose=0, start_prob=start_prob)
  data = task.device_data()
  data["train_size"] = len(data["train"]["tokens"])
  w = task.config.data.window
  openings = {tuple(row[:w]) for row in np.asarray(data["train"]["tokens"])}
  seqs = np.concatenate([np.asarray(task.batch(jax.random.key(i), data)) for i in range(8)])
  share = np.mean([tuple(s[task.prefix_len:]) in openings for s in seqs])
  # a random frame is the first one ~1/60 of the time
  assert {0.0: share < 0.1, 0.5: 0.3 < share < 0.7, 1.0: share == 1.0}[start_prob], share


def test_sample_cli_writes_midi_wav_png_deterministically(music_workdir, tmp_path):
  outs = []
  for name in ("a", "b"):
    out = str(tmp_path / name)
    r = run_cli("sample", f"--workdir={music_workdir}", "--num=3", f"--out={out}", "--seed=4")
    assert r.returncode == 0, r.stderr[-2000:]
    outs.append(out)
  files = sorted(os.listdir(outs[0]))
  assert files == sorted(os.listdir(outs[1]))
  for ext in ("mid", "wav", "png"):
    assert len([f for f in files if f.endswith(ext)]) == 3
  for f in files:
    if not f.endswith(".npz"):
      assert open(os.path.join(outs[0], f), "rb").read() == open(os.path.join(outs[1], f), "rb").read()
  roll = render.read_midi(os.path.join(outs[0], "sample_000.mid"))
  assert 0 < len(roll) <= 12
  # priming: every sample opens with the given frames
  prime = str(tmp_path / "prime.mid")
  opening = np.zeros((2, 88), np.uint8)
  opening[0, [43, 48, 52, 55]] = 1
  opening[1, [41, 48, 53, 57]] = 1
  render.write_midi(prime, opening)
  out = str(tmp_path / "primed")
  r = run_cli("sample", f"--workdir={music_workdir}", "--num=2", f"--out={out}", f"--prime={prime}")
  assert r.returncode == 0, r.stderr[-2000:]
  toks = np.load(os.path.join(out, "samples.npz"))["tokens"]
  for row in toks:
    np.testing.assert_array_equal(enc.tokens_to_roll(row)[:2], opening)


def test_music_eval_reports_nll_baselines_and_copying(music_workdir):
  r = run_cli("eval", f"--workdir={music_workdir}", "--num=4")
  assert r.returncode == 0, r.stderr[-2000:]
  res = json.load(open(os.path.join(music_workdir, "eval.json")))
  assert res["nll_per_frame"] > 0 and res["test_split"]["frames"] > 1000
  b = res["baselines"]
  assert b["per_key_markov"] < b["independent_bernoulli"]
  report = open(os.path.join(music_workdir, "eval.md")).read()
  assert f"**{res['nll_per_frame']:.3f}**" in report and "RNN-NADE" in report
  # held-out chorales share cadence formulas with the training set: runs of a few frames
  assert res["held_out"]["copy_run_frames"]["median"] >= 2
  # the control-token diagnostic: scored with the true token, major + minor make up the test NLL
  m = res["mode_token_nll"]
  assert set(m) == {"major", "minor"}
  frames = sum(v["frames"] for v in m.values())
  assert frames == res["test_split"]["frames"]
  assert abs(sum(v["true"] * v["frames"] for v in m.values()) / frames - res["nll_per_frame"]) < 1e-3
  assert all(np.isfinite([v["opposite"], v["none"]]).all() for v in m.values())
  assert "Mode token" in report


@pytest.mark.parametrize("method", [pytest.param("prefix", marks=pytest.mark.slow), "lora"])   # prefix: make test-slow
def test_peft_finetune_to_minor_freezes_the_base(music_workdir, tmp_path, method):
  from artjax.engine import peft
  from artjax.tasks import open_run as load_state
  from artjax.tasks.training import train
  _, pre = load_state(music_workdir)
  c = music_config(f"{method}_minor", steps=20)
  c.finetune.lora_rank = 2
  c.model.conditional = True       # same weights; the fine-tune keeps the control token
  c.finetune.init_from = music_workdir
  wd = str(tmp_path / method)
  train(c, wd, quiet=True)
  task, state = load_state(wd)
  for a, b in zip(jax.tree.leaves(pre["params"]), jax.tree.leaves(state["params"]), strict=True):
    np.testing.assert_array_equal(a, b)           # the pretrained weights did not move
  trained = state[task.finetune.key("params")]
  assert peft.count(trained) < 0.2 * peft.count(state["params"])
  opt_leaves = [x for x in jax.tree.leaves(state["opt"]) if np.ndim(x) > 0]
  assert sum(x.size for x in opt_leaves) <= 2 * peft.count(trained) + 10
  if method == "lora":
    assert any(np.abs(np.asarray(ab["b"])).max() > 0 for ab in trained.values())
  # the training data was minor chorales only
  assert set(np.asarray(task.device_data()["train"]["mode"]).tolist()) == {1}


@pytest.mark.parametrize("override,culprit", [("--config.model.d_ff=128", "mlp_in"),
                                              ("--config.model.num_layers=1", "blocks.1")])
def test_mismatched_pretrained_transformer_is_a_clear_error(music_workdir, tmp_path, override,
                                                            culprit):
  tiny = ["--config.model.d_model=32", "--config.model.num_layers=2", "--config.model.num_heads=2",
          "--config.model.d_ff=64"]
  r = run_cli("finetune", "--config=configs/music.py:prefix_minor", f"--init_from={music_workdir}",
              f"--workdir={tmp_path / 'x'}", "--config.train.steps=20",
              "--config.train.steps_per_dispatch=20", *tiny, override)
  err = r.stderr.strip().splitlines()[-1]
  assert r.returncode == 2 and "does not match" in err and culprit in err, r.stderr[-1500:]


def test_music_gan_trains_on_chorale_segments_and_writes_midi(tmp_path, chorales):
  from configs.music_gan import get_config
  from artjax.tasks.training import train
  c = get_config()
  c.model.width = 64
  c.train.update(steps=40, batch_size=32, steps_per_dispatch=20, log_every=20, ckpt_every=0,
                 sample_every=0, eval_every=0)
  c.mesh.num_devices = 1
  wd = str(tmp_path / "g")
  summary = train(c, wd, quiet=True)
  assert np.isfinite(summary["d_loss"])
  out = str(tmp_path / "s" / "samples.npz")
  r = run_cli("sample", f"--workdir={wd}", "--num=4", f"--out={out}", f"--grid={tmp_path / 'g.png'}")
  assert r.returncode == 0, r.stderr[-2000:]
  imgs = np.load(out)["images"]
  assert imgs.shape == (4, 8, 88, 1)
  mids = sorted(os.listdir(str(tmp_path / "s" / "samples_midi")))
  assert mids[:2] == ["sample_000.mid", "sample_000.wav"] and len(mids) == 8
  roll = render.read_midi(str(tmp_path / "s" / "samples_midi" / "sample_000.mid"))
  expect = (imgs[0, ..., 0] >= 128).astype(np.uint8)
  last = np.flatnonzero(expect.any(1)).max() + 1 if expect.any() else 0
  np.testing.assert_array_equal(roll, expect[:last])


def test_mood_maps_valence_and_arousal_to_mode_tempo_and_register(music_workdir, tmp_path):
  """--mood=V,A: the mode asked of the model (valence), the MIDI's tempo (arousal) and the
  whole piece moved by round(3 (V + A)) semitones, against the same seed asked the mode."""
  import mido
  from artjax.music import mood
  assert mood.controls(0.8, 0.6) == mood.Controls(0, 80 * 1.5 ** 0.6, 4)
  assert mood.controls(-0.7, -0.5).mode == 1 and mood.controls(-0.7, -0.5).register == -4
  assert mood.controls(0, -1).bpm == pytest.approx(53.33, abs=0.01)
  sad, plain = str(tmp_path / "sad"), str(tmp_path / "plain")
  r = run_cli("sample", f"--workdir={music_workdir}", "--num=2", f"--out={sad}", "--mood=-0.7,-0.5")
  assert r.returncode == 0, r.stderr[-2000:]
  r = run_cli("sample", f"--workdir={music_workdir}", "--num=2", f"--out={plain}", "--mode=minor")
  assert r.returncode == 0, r.stderr[-2000:]
  a, b = (np.load(os.path.join(d, "samples.npz")) for d in (sad, plain))
  assert a["modes"].tolist() == [1, 1]
  np.testing.assert_array_equal(a["tokens"], np.asarray(enc.transpose_clipped(b["tokens"], -4)))
  tempo = [m.tempo for m in mido.MidiFile(os.path.join(sad, "sample_000.mid")).tracks[0]
           if m.type == "set_tempo"]
  assert tempo and abs(mido.tempo2bpm(tempo[0]) - 80 * 1.5 ** -0.5) < 0.1
  for bad, words in (("2,0", "in [-1, 1]"), ("happy", "VALENCE,AROUSAL")):
    r = run_cli("sample", f"--workdir={music_workdir}", "--num=1", f"--out={sad}", f"--mood={bad}")
    assert r.returncode == 2 and words in r.stderr, r.stderr
  r = run_cli("sample", f"--workdir={music_workdir}", "--num=1", f"--out={sad}", "--mood=0.5,0",
              "--mode=minor")
  assert r.returncode == 2 and "sets the mode" in r.stderr


def test_sample_cli_mode_and_guidance_overrides(music_workdir, tmp_path, trained_workdir):
  out = str(tmp_path / "g")
  r = run_cli("sample", f"--workdir={music_workdir}", "--num=2", f"--out={out}", "--mode=minor",
              "--guidance=2.0", "--temperature=0.9")
  assert r.returncode == 0, r.stderr[-2000:]
  assert np.load(os.path.join(out, "samples.npz"))["modes"].tolist() == [1, 1]
  r = run_cli("sample", f"--workdir={music_workdir}", "--num=2", f"--out={out}", "--mode=dorian")
  assert r.returncode == 2 and "sample.mode" in r.stderr
  r = run_cli("sample", f"--workdir={trained_workdir}", "--num=2", f"--out={tmp_path / 'x.npz'}",
              "--guidance=2")
  assert r.returncode == 2 and "--guidance does not apply" in r.stderr


@pytest.mark.parametrize("prefix_len,chunks,group", [
    pytest.param(0, 3, 3, marks=pytest.mark.slow), (0, 1, 2), pytest.param(5, 3, 2, marks=pytest.mark.slow)])   # 5 s each: make test-slow
def test_blocked_attention_equals_batched_attention(prefix_len, chunks, group):
  """blocked_attention (flash-style loop over (sequence, head) pairs, recomputing the
  probabilities in the backward pass) is exact: values and gradients, prefix included."""
  from artjax.nn.transformer import _attend, blocked_attention
  b, t, h, d = 3, 37, 2, 8
  ks = jax.random.split(jax.random.key(0), 6)
  q, k, v, w = (jax.random.normal(kk, (b, t, h, d)) for kk in ks[:4])
  pk, pv = (jax.random.normal(kk, (b, max(prefix_len, 1), h, d))[:, :prefix_len] for kk in ks[4:])
  pos = jnp.arange(t)
  mask = pos[None, :] <= pos[:, None]

  def ref(q, k, v, pk, pv):
    return jnp.sum(_attend(q, k, v, mask, (pk, pv) if prefix_len else None) * w)

  def blocked(q, k, v, pk, pv):
    kk, vv = jnp.concatenate([pk, k], 1), jnp.concatenate([pv, v], 1)
    return jnp.sum(blocked_attention(q, kk, vv, prefix_len, chunks, group) * w)

  args = (q, k, v, pk, pv)
  a = jax.value_and_grad(ref, argnums=range(5))(*args)
  bb = jax.value_and_grad(blocked, argnums=range(5))(*args)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(bb), strict=True):
    np.testing.assert_allclose(x, y, atol=2e-5, rtol=1e-5)


def test_pitch_class_profiles_of_major_and_minor_chorales(chorales):
  tr = chorales.splits["train"]
  prof = enc.pitch_class_profiles(tr["rolls"], tr["tonic"], tr["mode"])
  np.testing.assert_allclose(prof.sum(1), 1.0)
  major, minor = prof
  assert major[4] > 5 * major[3] and minor[3] > 5 * minor[4]      # the third decides the mode
  assert major[0] > 0.15 and minor[7] > 0.15                       # tonic and fifth are common


def _step_params(config, batches):
  """The music task's real (jitted) `train_step` on the given token batches in order."""
  from artjax.tasks import build_task
  task = build_task(config)
  task.batch = lambda key, data: data["batch"]    # the step draws these instead
  step = jax.jit(task.train_step)
  state = task.init_state(0)
  for b in batches:
    state, _ = step(state, {"batch": b})
  return state["params"]


@pytest.mark.slow   # 4.5 s: make test-slow
def test_gradient_accumulation_equals_the_larger_batch(chorales):
  from artjax.tasks import build_task
  c = music_config(batch_size=64)
  c.model.update(dropout=0.0, cond_dropout=0.0)
  # plain SGD: Adam would hide a wrong scale (a sum instead of a mean of the micro-batches)
  c.optim.update(name="sgd", lr=0.5, b1=0.0, schedule="constant", warmup_steps=0,
                 clip_norm=0.0, weight_decay=0.0)
  task = build_task(c)
  data = jax.tree.map(jnp.asarray, task.device_data())
  data["train_size"] = jnp.int32(len(data["train"]["tokens"]))
  rows = np.asarray(task.batch(jax.random.key(0), data))
  full = rows[(rows[:, 1:] <= enc.EOF).sum(1) == c.data.window][:8]   # equal scored counts
  assert len(full) == 8
  big = c.copy_and_resolve_references()
  big.train.batch_size = 8
  small = c.copy_and_resolve_references()
  small.train.batch_size = 4
  small.optim.grad_accum = 2
  one = _step_params(big, [jnp.asarray(full)])
  two = _step_params(small, [jnp.asarray(full[:4]), jnp.asarray(full[4:])])
  start = build_task(big).init_state(0)["params"]
  fa, fb, f0 = (jax.tree_util.tree_flatten_with_path(t)[0] for t in (one, two, start))
  assert [p for p, _ in fa] == [p for p, _ in fb]
  moved = 0
  for (p, a), (_, b), (_, z) in zip(fa, fb, f0):
    upd = np.abs(np.asarray(a) - np.asarray(z)).max()
    moved += upd > 0
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-3 * upd + 1e-7, err_msg=jax.tree_util.keystr(p))
  assert moved == len(fa)


def test_bf16_attention_products_compile_as_bf16():
  """train.dtype=bf16: the attention products (batched dots) as well as the Dense ones
  multiply bf16 operands with fp32 results in the compiled training step."""
  from test_models import _dot_types
  from artjax.tasks import build_task
  c = music_config(batch_size=4, dtype="bf16")
  c.model.attn_block = 0
  task = build_task(c)
  state = jax.eval_shape(task.init_state, 0)
  x = jnp.zeros((4, c.data.window + task.prefix_len), jnp.int32)

  def loss(params):
    params = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
    return jnp.mean(task.model(params)(x, train=False).astype(jnp.float32))
  lowered = jax.jit(jax.grad(loss)).lower(state["params"])
  # with XLA:CPU's Eigen single-threaded (make test-threads) XLA itself upcasts most bf16 dots
  # to f32 while compiling (48 of 74 here): then what artjax hands XLA is what is checked
  single = "--xla_cpu_multi_thread_eigen=false" in os.environ.get("XLA_FLAGS", "")
  hlo = lowered.as_text(dialect="hlo") if single else lowered.compile().as_text()
  batched = [l for l in hlo.splitlines() if " dot(" in l and "lhs_batch_dims" in l]
  assert len(batched) >= 3 * c.model.num_layers * 2, len(batched)   # QK^T, PV: fwd + 2 bwd
  types = _dot_types(hlo)
  assert types and all(t == ("bf16", "bf16", "f32") for t in types), types


def _chorale_roll(chorales, frames=24):
  return np.asarray(chorales.rolls("test")[0][:frames])


def test_voices_split_satb_and_the_voiced_midi_reads_back_the_same_roll(chorales, tmp_path):
  import mido
  roll = _chorale_roll(chorales)
  voices = render.voices_of(roll)
  assert sum(len(v) for v in voices) == len(render.notes_of(roll)) and all(voices)
  mean = [np.mean([p for p, _, _ in v]) for v in voices]
  assert mean == sorted(mean, reverse=True)                  # soprano above alto above ... bass
  programs = render.parse_instruments("violin,viola,cello,contrabass")
  assert programs == (40, 41, 42, 43) and render.parse_instruments("choir") == (52,) * 4
  path = str(tmp_path / "v.mid")
  render.voiced_midi_file(roll, programs).save(path)
  assert np.array_equal(render.read_midi(path), (roll > 0).astype(np.uint8))
  mid = mido.MidiFile(path)
  got = [[m.program for m in t if m.type == "program_change"] for t in mid.tracks]
  assert got == [[40], [41], [42], [43]]
  for bad, words in (("kazoo", "unknown instrument 'kazoo'"), ("", "1 to 4 names"),
                     ("choir,choir,choir,choir,choir", "1 to 4 names")):
    with pytest.raises(ValueError, match=words):
      render.parse_instruments(bad)


def test_audio_is_loudness_normalised_in_every_format_and_falls_back_with_a_note(chorales, tmp_path, monkeypatch):
  import subprocess
  import imageio_ffmpeg
  monkeypatch.setattr(render, "fluidsynth_available", lambda: False)
  roll = _chorale_roll(chorales, 8)
  pcm, how = render.render_audio(roll, "organ", bpm=120)
  assert how == "numpy" and pcm.ndim == 2
  rms_db = 20 * np.log10(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
  assert abs(rms_db - render.TARGET_RMS_DBFS) < 0.1 and np.abs(pcm).max() <= 10 ** (-1 / 20) + 1e-6
  for ext in render.AUDIO_FORMATS:
    path = str(tmp_path / f"a.{ext}")
    render.write_audio(path, pcm)
    r = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", path, "-f", "null", "-"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "Duration: 00:00:0" in r.stderr, r.stderr[-500:]
  with pytest.raises(ValueError, match="audio files are"):
    render.write_audio(str(tmp_path / "a.flac"), pcm)


@pytest.mark.slow   # 4 s (music21 hears 120 segments): make test-slow
def test_four_bar_segments_and_the_mode_tests_of_a_roll_gan(chorales, data_dir):
  """chorale_rolls16: 4-bar segments of each chorale (stride 2 frames) labelled by mode; the
  eval's mode-following measure hears held-out segments in their labelled mode, not in the
  opposite one; exact copies are found exactly."""
  from artjax.music import data as music_data, metrics
  ds = music_data.chorale_rolls(data_dir, "chorale_rolls16")
  images, labels = ds.splits["train"]
  assert images.shape[1:] == (16, 88, 1) and ds.name == "chorale_rolls16"
  first = chorales.rolls("train")[0]
  np.testing.assert_array_equal(images[0, ..., 0] >= 128, first[:16] > 0)
  np.testing.assert_array_equal(images[1, ..., 0] >= 128, first[2:18] > 0)
  assert labels[0] == chorales.modes("train")[0]
  train = images[..., 0] >= 128
  val, val_modes = ds.splits["validation"][0][..., 0] >= 128, ds.splits["validation"][1]
  right = metrics.roll_mode_following(val, val_modes, train[::4], labels[::4], limit=30)
  wrong = metrics.roll_mode_following(val, 1 - val_modes, train[::4], labels[::4], limit=30)
  for mode in ("major", "minor"):
    assert right[mode]["n"] == 30
    assert right[mode]["music21"] > 0.6 and wrong[mode]["music21"] < 0.4, (right, wrong)
  assert right["major"]["chords"] > 0.6 and wrong["major"]["chords"] < 0.4
  assert metrics.exact_copy_share(train[:40], train) == 1.0
  assert metrics.exact_copy_share(np.zeros((3, 16, 88), bool) | (np.arange(88) % 2 == 0), train) == 0.0


def test_segments_in_c_move_each_chorale_by_its_tonic(chorales, data_dir):
  """chorale_rolls16c: the same segments as chorale_rolls16, each chorale moved by the nearest
  shift of its tonic to C (the keynorm rule); labels unchanged; the tonic's pitch class is
  then C, so the pitch-class profile of major segments puts E (4) above E-flat (3) and minor
  ones the reverse."""
  from artjax.music import data as music_data
  from artjax.music.encoding import tonic_shift
  plain = music_data.chorale_rolls(data_dir, "chorale_rolls16")
  in_c = music_data.chorale_rolls(data_dir, "chorale_rolls16c")
  np.testing.assert_array_equal(plain.labels("train"), in_c.labels("train"))
  first, tonic = chorales.rolls("train")[0], int(chorales.splits["train"]["tonic"][0])
  k = int(tonic_shift(tonic))
  moved = in_c.images("train")[0, ..., 0] >= 128
  if k >= 0:
    np.testing.assert_array_equal(moved[:, k:], first[:16, :88 - k] > 0)
  else:
    np.testing.assert_array_equal(moved[:, :k], first[:16, -k:] > 0)
  pcs = (np.arange(88) + 9) % 12          # key 0 is A0
  for mode in (0, 1):
    rolls = in_c.images("train")[in_c.labels("train") == mode][..., 0] >= 128
    profile = np.bincount(np.broadcast_to(pcs, rolls.shape)[rolls], minlength=12)
    assert (profile[4] > profile[3]) == (mode == 0), (mode, profile)
