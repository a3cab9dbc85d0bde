"""`run.py animate --content --styles`: a style morph that changes steadily from the first
style to the second, with less flicker warm-started than started afresh every frame."""

import numpy as np

from helpers import run_cli
from test_animate import _photos


def _morph(tmp_path, p, warm):
  out = tmp_path / f"morph_{warm}.mp4"
  r = run_cli("animate", f"--content={p['chelsea']}", f"--styles={p['rocket']},{p['coffee']}",
              f"--out={out}", "--seconds=1.5", "--fps=8", "--size=96", "--steps=30",
              "--first_steps=200", f"--warm_start={warm}")   # docs/animation.md's settings
  # (at 48 px with 20 steps a frame, a cold start barely leaves the content and is as steady)
  assert r.returncode == 0, r.stderr
  from artjax.engine.video import read_frames
  frames, _ = read_frames(str(out))
  return frames.astype(np.float32)


def test_style_morph_changes_steadily_and_warm_start_flickers_less(tmp_path):
  p = _photos(tmp_path)
  warm, cold = _morph(tmp_path, p, "true"), _morph(tmp_path, p, "false")
  assert warm.shape == (12, 64, 96, 3)                        # 1.5 s x 8 fps; chelsea 451 x 300 -> 96 x 64
  step = np.abs(np.diff(warm, axis=0)).mean()
  assert np.abs(warm[-1] - warm[0]).mean() > 2 * step > 0     # it travels, frame by frame
  second = lambda f: np.abs(f[2:] - 2 * f[1:-1] + f[:-2]).mean()  # noqa: E731
  assert second(warm) < second(cold), (second(warm), second(cold))
