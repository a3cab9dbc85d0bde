"""`run.py animate --content=C.png --styles=A.png,B.png --out=morph.mp4`: a content picture
morphing from one style to the next. The target feature statistics are interpolated
between the styles (artjax.image.style.morph_weights); the first frame is a full
optimisation from the content, and every later frame starts from the one before (warm
start, so the picture does not flicker; `--warm_start=false` starts each frame from the
content, the baseline the flicker figure, the frames' mean second difference, is read
against). Frames come from one compiled
scan per chunk and stream to the encoder."""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from artjax import ConfigError
from artjax.commands import stylize as stylize_cmd
from artjax.commands.options import check_outputs
from artjax.engine.video import VideoWriter
from artjax.image import style
from artjax.image.networks import feature_network
from artjax.engine import progress

CHUNK = 4                   # frames per compiled call


@functools.lru_cache(maxsize=8)
def _compiled(net, settings: style.Settings, steps: int, warm: bool):
  return jax.jit(lambda p, c, s, mixes, v0: style.morph(net, p, settings, c, s, mixes, v0, steps, warm))


def check(content: str, styles: list, out: str, steps: int, first_steps: int) -> None:
  if len(styles) < 2:
    raise ConfigError("--styles needs at least two pictures to morph between (A.png,B.png[,C.png])")
  if not 1 <= steps <= 2000 or not 1 <= first_steps <= 5000:
    raise ConfigError(f"--steps must be in 1..2000 and --first_steps in 1..5000, got {steps}, {first_steps}")
  check_outputs({"--out": out}, {"--content": content, "--styles": styles})


def temporal(frames) -> dict:
  """{"change": mean |f[t+1] - f[t]|, "flicker": mean |f[t+1] - 2 f[t] + f[t-1]|} in uint8
  levels: a morph should change steadily (first difference) without jitter (second)."""
  f = np.asarray(frames, np.float32)
  change = float(np.abs(np.diff(f, axis=0)).mean()) if len(f) > 1 else 0.0
  jitter = float(np.abs(f[2:] - 2 * f[1:-1] + f[:-2]).mean()) if len(f) > 2 else 0.0
  return {"change": change, "flicker": jitter}


def morph_video(content: str, styles: list, out: str, d: dict, *, fps: int, size: int,
                seed: int = 0, steps: int = 40, first_steps: int = 300, warm: bool = True) -> dict:
  """Writes the morph to `out` (MP4 or GIF, d["frames"] frames); returns frames, size and
  the flicker (mean |frame_t - frame_t-1| in uint8 levels)."""
  check(content, styles, out, steps, first_steps)
  r = stylize_cmd.Request(content=content, styles=tuple(styles), out="unused.png", size=size,
                          scales=1, steps=first_steps, seed=seed, verbose=False)
  net, params = feature_network(r.features, r.seed, r.weights, r.dtype)
  _, _, contents, style_sets, _ = stylize_cmd.prepare(r, net)
  params = jax.tree.map(jnp.asarray, params)
  s = stylize_cmd.settings_of(r)
  mixes = style.morph_weights(len(styles), d["frames"])
  v, first = _compiled(net, s, first_steps, True)(params, contents[0], style_sets[0], mixes[:1], contents[0])
  h, w = contents[0].shape[1:3]
  frames_u8 = list(_u8(first))
  run = _compiled(net, s, steps, warm)
  with VideoWriter(out, fps, (h + h % 2, w + w % 2)) as video:
    video.write(_even(_u8(first)))
    for i in tqdm(range(1, d["frames"], CHUNK), desc="morph", leave=progress.leave()):
      idx = np.minimum(np.arange(i, i + CHUNK), d["frames"] - 1)     # fixed shape: pad the end
      v, chunk = run(params, contents[0], style_sets[0], mixes[idx], v)
      chunk = _u8(chunk)[:min(CHUNK, d["frames"] - i)]
      frames_u8.extend(chunk)
      video.write(_even(chunk))
  result = {"frames": video.count, "size": (h + h % 2, w + w % 2), **temporal(frames_u8)}
  print(f"wrote {video.count} frames of a {len(styles)}-style morph ({w}x{h}, {fps} fps) to "
        f"{out}; consecutive frames differ by {result['change']:.2f} levels, flicker (second "
        f"difference) {result['flicker']:.2f} ({'warm' if warm else 'cold'} start)")
  return result


def _u8(frames) -> np.ndarray:
  return (np.clip(np.asarray(frames), 0, 1) * 255 + 0.5).astype(np.uint8)


def _even(frames) -> np.ndarray:
  """Pads height and width to even numbers (yuv420p) by repeating the last row / column."""
  h, w = frames.shape[1:3]
  return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
