"""`run.py animate`: the files decode to exactly seconds x fps frames of the asked size; a
walk moves smoothly (consecutive frames far closer than random samples, never still) and
loops; class morphs pass through the named classes; bad arguments write nothing."""

import os

import numpy as np
import pytest

from helpers import run_cli

from artjax.engine.video import read_frames


def _diffs(frames):
  f = frames.astype(np.float32)
  return np.abs(f[1:] - f[:-1]).mean((1, 2, 3))


@pytest.fixture(scope="module")
def walk(trained_workdir, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("animate") / "walk.mp4")
  r = run_cli("animate", f"--workdir={trained_workdir}", f"--out={out}", "--seconds=2",
              "--fps=12", "--size=32", "--grid=1x2", "--keyframes=3", "--resize=bilinear")
  assert r.returncode == 0, r.stderr
  return out


def test_mp4_has_every_frame_at_the_asked_size(walk):
  frames, meta = read_frames(walk)
  assert frames.shape == (24, 32, 64, 3)
  assert abs(meta["fps"] - 12) < 1e-6 and meta["codec"].startswith("h264")
  assert not os.path.exists(walk + ".partial.mp4")


def test_walk_is_smooth_moving_and_loops(walk, trained_workdir, tmp_path):
  frames, _ = read_frames(walk)
  step = _diffs(frames)
  # random pairs of samples of the same model, drawn at the same size, as the yardstick
  rng = np.random.default_rng(0)
  pairs = [np.abs(frames[i].astype(np.float32) - frames[j]).mean()
           for i, j in rng.integers(0, len(frames), (40, 2)) if abs(i - j) > 6]
  assert step.max() > 0.2                          # never still
  assert np.median(step) < 0.5 * np.median(pairs)
  loop = np.abs(frames[-1].astype(np.float32) - frames[0]).mean()
  assert loop < 2 * np.median(step) + 1.0           # the last frame is next to the first


def test_gif_and_class_morph(trained_workdir, tmp_path):
  out = tmp_path / "morph.gif"
  r = run_cli("animate", f"--workdir={trained_workdir}", f"--out={out}", "--seconds=2",
              "--fps=10", "--size=16", "--classes=1,7")
  assert r.returncode == 0, r.stderr
  from PIL import Image
  gif = Image.open(out)
  assert gif.n_frames == 20 and gif.size == (16, 16)
  gif.seek(0)
  first = np.asarray(gif.convert("RGB"), np.float32)
  gif.seek(10)
  middle = np.asarray(gif.convert("RGB"), np.float32)
  assert np.abs(first - middle).mean() > 1.0       # class 1 at frame 0, class 7 at frame 10


@pytest.mark.parametrize("flag, needle", [
    ("--fps=0", "--fps must be in 1..60"),
    ("--seconds=36000", "frames"),
    ("--classes=1,cat", "not a class of digits"),
    ("--out=walk.avi", "--out must end in"),
    ("--space=w", "--space=w"),
    ("--grid=3", "RxC"),
    ("--mixing=coarse", "StyleGAN-class"),
])
def test_bad_arguments_are_one_line_and_write_nothing(trained_workdir, tmp_path, flag, needle):
  out = tmp_path / "x.mp4"
  args = [f"--workdir={trained_workdir}", f"--out={out}", "--seconds=1", "--fps=4", "--size=8", flag]
  if flag.startswith("--out"):
    args = [a for a in args if not a.startswith("--out=")] + [f"--out={tmp_path / 'walk.avi'}"]
  r = run_cli("animate", *args)
  assert r.returncode != 0 and needle in r.stderr, r.stderr
  assert r.stderr.count("error:") == 1
  assert not [p for p in os.listdir(tmp_path)]


def test_not_an_image_generator(music_workdir, tmp_path):
  r = run_cli("animate", f"--workdir={music_workdir}", f"--out={tmp_path / 'x.mp4'}")
  assert r.returncode != 0 and "image generator" in r.stderr
  assert not os.listdir(tmp_path)


def test_music_is_muxed_for_the_length_of_the_video(trained_workdir, music_workdir, tmp_path):
  import subprocess
  import wave
  import imageio_ffmpeg
  out = tmp_path / "with_music.mp4"
  r = run_cli("animate", f"--workdir={trained_workdir}", f"--out={out}", "--seconds=2",
              "--fps=12", "--size=16", f"--music={music_workdir}", "--mode=minor")
  assert r.returncode == 0, r.stderr
  frames, _ = read_frames(str(out))
  assert len(frames) == 24
  wav = tmp_path / "a.wav"
  subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(out), "-map", "0:a",
                  str(wav)], check=True)
  with wave.open(str(wav)) as w:
    secs = w.getnframes() / w.getframerate()
  assert abs(secs - 2.0) < 1 / 12 + 0.03          # within one frame (AAC priming aside)
  assert not [p for p in os.listdir(tmp_path) if "soundtrack" in p or "partial" in p]
  r = run_cli("animate", f"--workdir={trained_workdir}", f"--out={tmp_path / 'x.gif'}",
              f"--music={music_workdir}")
  assert r.returncode != 0 and "a GIF has no sound" in r.stderr
  r = run_cli("animate", f"--workdir={trained_workdir}", f"--out={tmp_path / 'y.mp4'}",
              f"--music={trained_workdir}")
  assert r.returncode != 0 and "Music Transformer" in r.stderr and not (tmp_path / "y.mp4").exists()


def _photos(tmp_path):
  import imageio.v3 as iio
  import skimage.data
  paths = {}
  for name in ("chelsea", "rocket", "coffee"):
    paths[name] = str(tmp_path / f"{name}.png")
    iio.imwrite(paths[name], getattr(skimage.data, name)())
  return paths


@pytest.mark.parametrize("extra, needle", [
    (["--styles=S1"], "at least two pictures"),
    (["--styles=S1,S2", "--workdir=W"], "not both"),
    (["--styles=S1,missing.png"], "missing.png"),
    (["--styles=S1,S2", "--fps=0"], "--fps must be in 1..60"),
    (["--styles=S1,S2", "--steps=0"], "--steps must be in 1..2000"),
    (["--styles=S1,S2", "--out=OUT.avi"], "--out must end in"),
])
def test_bad_style_morph_arguments(trained_workdir, tmp_path, extra, needle):
  p = _photos(tmp_path)
  out = tmp_path / "out" / "m.mp4"
  sub = {"S1": p["rocket"], "S2": p["coffee"], "W": trained_workdir, "OUT": str(tmp_path / "out" / "m")}
  args = [a.replace("S1", sub["S1"]).replace("S2", sub["S2"]).replace("=W", "=" + sub["W"])
          .replace("OUT", sub["OUT"]) for a in extra]
  if not any(a.startswith("--out") for a in args):
    args.append(f"--out={out}")
  r = run_cli("animate", f"--content={p['chelsea']}", "--seconds=1", "--fps=4", "--size=32", *args)
  assert r.returncode != 0 and needle in r.stderr and r.stderr.count("error:") == 1, r.stderr
  assert not (tmp_path / "out").exists()
