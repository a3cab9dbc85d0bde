"""`run.py animate`: a looping walk through a trained image generator's latent space as MP4
or GIF (StyleGAN3's gen_video habit): `--keyframes` random latents joined by slerp, lerp or
cubic interpolation in z (or, StyleGAN-class, in w), several walks at once (`--grid`), class
morphs of a conditional model (`--classes`), style-mixing sweeps (`--mixing`). Every argument
is checked before anything compiles; frames come in fixed-size batches from one compiled
program and stream to the encoder; the file appears only when complete."""

from __future__ import annotations

import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from tqdm.auto import tqdm

from artjax import ConfigError
from artjax.commands.options import need
from artjax.engine import workdir as runs
from artjax.engine.video import FORMATS, VideoWriter
from artjax.image import animation
from artjax.tasks import open_run
from artjax.engine import progress

SUMMARY = "a looping latent walk, class morph or style-mixing sweep as MP4 or GIF"
USAGE = ("animate --workdir=DIR --out=walk.mp4|walk.gif [--keyframes=N] [--seconds=S] "
         "[--fps=F] [--size=PX] [--grid=RxC] [--space=z|w] [--interp=slerp|lerp|cubic] "
         "[--classes=A,B] [--mixing=coarse|fine] [--truncation=PSI] [--seed=S]; or a style "
         "morph: animate --content=C.png --styles=A.png,B.png --out=morph.mp4 [--steps=N]")
MAX_FRAMES = 30 * 60 * 10          # ten minutes at 30 fps
MAX_GIF_FRAMES = 600
MAX_SIDE = 2048
BATCH = 32


def _grid(spec: str) -> tuple[int, int]:
  try:
    r, c = (int(v) for v in spec.lower().split("x"))
  except ValueError:
    raise ConfigError(f"--grid must be RxC (e.g. 2x3), got {spec!r}") from None
  if not (1 <= r <= 16 and 1 <= c <= 16):
    raise ConfigError(f"--grid: rows and columns must be 1..16, got {spec!r}")
  return r, c


def check_args(a: dict) -> dict:
  """Every numeric and named argument, before anything loads; returns derived numbers."""
  ext = os.path.splitext(a["out"] or "")[1].lower()
  if ext not in FORMATS:
    raise ConfigError(f"--out must end in {' or '.join(FORMATS)}, got {a['out']!r}")
  if os.path.isdir(a["out"]):
    raise ConfigError(f"--out={a['out']} is a directory: name a file")
  for name, lo, hi in (("fps", 1, 60), ("keyframes", 2, 1000), ("size", 8, MAX_SIDE)):
    if not lo <= a[name] <= hi:
      raise ConfigError(f"--{name} must be in {lo}..{hi}, got {a[name]}")
  if not (math.isfinite(a["seconds"]) and a["seconds"] > 0):
    raise ConfigError(f"--seconds must be a positive number, got {a['seconds']}")
  frames = int(round(a["seconds"] * a["fps"]))
  cap = MAX_GIF_FRAMES if ext == ".gif" else MAX_FRAMES
  if not 2 <= frames <= cap:
    raise ConfigError(f"--seconds x --fps = {frames} frames; a {ext} holds 2..{cap:,} frames "
                      f"here ({cap / a['fps']:.0f} s at {a['fps']} fps)")
  if a["interp"] not in animation.INTERPOLATIONS:
    raise ConfigError(f"--interp must be one of {animation.INTERPOLATIONS}, got {a['interp']!r}")
  if a["truncation"] is not None and not (math.isfinite(a["truncation"]) and a["truncation"] >= 0):
    raise ConfigError(f"--truncation must be >= 0, got {a['truncation']}")
  if a["mixing"] not in (None, "coarse", "fine"):
    raise ConfigError(f"--mixing must be coarse or fine, got {a['mixing']!r}")
  rows, cols = _grid(a["grid"])
  if rows * cols * a["size"] ** 2 > MAX_SIDE ** 2:
    raise ConfigError(f"--grid {rows}x{cols} of {a['size']} px tiles is above {MAX_SIDE}x{MAX_SIDE} pixels")
  return {"ext": ext, "frames": frames, "rows": rows, "cols": cols}


def _check_task(task, a, workdir):
  if not task.animation_spaces:
    raise ConfigError(f"{workdir!r} is a {task.config.task} run: animate needs an image "
                      "generator (a GAN or StyleGAN-class run)")
  if a["space"] not in task.animation_spaces:
    raise ConfigError(f"--space={a['space']}: this generator walks in {task.animation_spaces}")
  if a["mixing"] and not task.num_ws:
    raise ConfigError("--mixing needs a StyleGAN-class run (per-layer styles)")
  if not a["classes"]:
    return None
  names = [n.strip() for n in a["classes"].split(",") if n.strip()]
  if len(names) < 2:
    raise ConfigError("--classes needs at least two classes to morph between (A,B[,C...])")
  return [task.class_index(n) for n in names]


def _paths(task, state, a, d, classes):
  """(inputs, fixed, space): inputs(frame indices [n]) -> (latents [n * T, D], labels) of
  those frames for the T = rows x cols walks, computed inside the compiled program from the
  keyframes alone (memory flat in the video's length); fixed: the w [T, D] the other
  styles keep in a style-mixing sweep."""
  tiles, k, f = d["rows"] * d["cols"], a["keyframes"], d["frames"]
  z = jax.random.normal(jax.random.key(a["seed"]), (tiles, k, task.latent_dim))
  if classes:
    def inputs(idx):                                          # each tile's latent fixed
      weights = animation.class_path(classes, task.num_classes, f, idx)        # [n, K]
      lat = jnp.broadcast_to(z[:, 0], (idx.shape[0], tiles, task.latent_dim))
      lab = jnp.broadcast_to(weights[:, None], (idx.shape[0], tiles, task.num_classes))
      return lat.reshape(-1, task.latent_dim), lab.reshape(-1, task.num_classes)
    return inputs, None, "z"
  space = a["space"]
  labels = (jnp.arange(tiles, dtype=jnp.int32) % task.num_classes) if task.conditional else None
  rep = None if labels is None else jnp.repeat(labels, k)
  keys = task.keyframes(state, z.reshape(tiles * k, -1), rep, space).reshape(tiles, k, -1)

  def inputs(idx):
    path = jax.vmap(lambda kk: animation.walk(kk, f, a["interp"], idx))(keys)  # [T, n, D]
    lat = path.transpose(1, 0, 2).reshape(-1, keys.shape[-1])
    return lat, (None if labels is None else jnp.tile(labels, idx.shape[0]))
  return inputs, (keys[:, 0] if a["mixing"] else None), space


def _renderer(task, a, space, inputs, fixed):
  """One compiled program: frame indices -> uint8 tiles [n * T, size, size, 3]."""
  size, method = a["size"], ("nearest" if a["resize"] == "nearest" else "linear")
  mix = None
  if a["mixing"]:
    coarse = tuple(i < 4 for i in range(task.num_ws))
    mix = coarse if a["mixing"] == "coarse" else tuple(not c for c in coarse)

  def render(state, idx):
    latents, labels = inputs(idx)
    if mix is not None:
      x = task.render(state, latents, labels, space, jnp.tile(fixed, (idx.shape[0], 1)), mix)
    else:
      x = task.render(state, latents, labels, space)
    if x.shape[-1] == 1:
      x = jnp.repeat(x, 3, -1)
    x = jax.image.resize(x.astype(jnp.float32), (x.shape[0], size, size, 3), method)
    return jnp.clip(jnp.round(x), 0, 255).astype(jnp.uint8)
  return jax.jit(render)


def _tile(images, rows, cols):
  """[T, s, s, 3] -> one frame [rows*s (+1), cols*s (+1), 3], padded to even sides."""
  t, s = images.shape[0], images.shape[1]
  frame = images.reshape(rows, cols, s, s, 3).transpose(0, 2, 1, 3, 4).reshape(rows * s, cols * s, 3)
  return np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")


BPM = 80.0


def _music_run(music: str, mode: str | None):
  """(task, state) of a Music Transformer run for the soundtrack, checked before any work."""
  from artjax.tasks.build import task_class
  if task_class(runs.load_config(music)).sample_kind != "tokens":
    raise ConfigError(f"--music={music!r} is not a Music Transformer run")
  try:
    task, state = open_run(music, sample={"mode": mode} if mode else None)
  except ConfigError as e:
    raise ConfigError(f"--music: {e}") from e
  task = task.unwrapped
  if task.sample_kind != "tokens":
    raise ConfigError(f"--music={music!r} is a {task.config.task} run: name a Music Transformer run")
  return task, state


def soundtrack(task, state, seconds: float, seed: int, path: str) -> float:
  """A chorale sampled from the music run, rendered (artjax.music.render) and cut to exactly
  `seconds` (looped when the model's sample is shorter); a WAV at `path` (FluidSynth with the
  GM SoundFont when installed, sample.instruments). Returns its
  length in seconds."""
  from artjax.music import encoding as enc, render
  need = math.ceil(seconds * BPM / 60.0) + 1                  # frames are beats
  task.config.sample.num_frames = int(min(need, task.config.sample.num_frames))
  s = jax.device_get(jax.jit(lambda st: task.sample(st, seed, 1))(state))
  roll = enc.tokens_to_roll(np.asarray(s["tokens"])[0])
  roll = np.concatenate([roll] * math.ceil(need / max(len(roll), 1)))
  pcm, how = render.render_audio(roll, task.config.sample.get("instruments", "choir"), BPM)
  if how == "numpy":
    print(render.FALLBACK_NOTE, file=sys.stderr)
  n = int(round(seconds * render.SAMPLE_RATE))
  pcm = np.pad(pcm, ((0, max(0, n - len(pcm))), (0, 0)))[:n]
  render.write_audio(path, pcm)
  return n / render.SAMPLE_RATE


def animate(workdir: str, out: str, **a) -> dict:
  d = check_args(dict(a, out=out))
  music = a.get("music")
  if music and d["ext"] != ".mp4":
    raise ConfigError("--music needs an .mp4 output (a GIF has no sound)")
  runs.load_config(workdir)                                   # a run, before anything loads
  sound = _music_run(music, a.get("mode")) if music else None
  truncation = a.get("truncation")
  task, state = open_run(workdir, sample=None if truncation is None else
                         {"truncation": float(truncation)})
  task = task.unwrapped
  classes = _check_task(task, a, workdir)
  inputs, fixed, space = _paths(task, state, a, d, classes)
  tiles = d["rows"] * d["cols"]
  per_call = max(1, BATCH // tiles)                           # frames per compiled call
  render = _renderer(task, a, space, inputs, fixed)
  size = (d["rows"] * a["size"] + (d["rows"] * a["size"]) % 2,
          d["cols"] * a["size"] + (d["cols"] * a["size"]) % 2)
  audio = None
  if sound is not None:
    audio = out + ".soundtrack.wav"
    soundtrack(*sound, d["frames"] / a["fps"], a["seed"], audio)
  try:
    count = _encode(out, a, d, size, render, state, tiles, per_call, audio)
  finally:
    if audio and os.path.exists(audio):
      os.remove(audio)
  print(f"wrote {count} frames ({count / a['fps']:.1f} s at {a['fps']} fps, "
        f"{size[1]}x{size[0]}{', with music' if audio else ''}) to {out}")
  return {"frames": count, "size": size}


def _encode(out, a, d, size, render, state, tiles, per_call, audio):
  with VideoWriter(out, a["fps"], size, audio=audio) as video:
    for i in tqdm(range(0, d["frames"], per_call), desc="frames", leave=progress.leave()):
      idx = np.minimum(np.arange(i, i + per_call), d["frames"] - 1)   # fixed shape: pad the end
      imgs = np.asarray(render(state, jnp.asarray(idx, jnp.int32))).reshape(
          per_call, tiles, a["size"], a["size"], 3)
      video.write(np.stack([_tile(im, d["rows"], d["cols"]) for im in imgs[:min(per_call, d["frames"] - i)]]))
  return video.count


def define(fv, argv):
  d = dict(flag_values=fv)
  flags.DEFINE_string("workdir", None, "A trained image generator (GAN or StyleGAN-class run).", **d)
  flags.DEFINE_string("out", None, "walk.mp4 (H.264) or walk.gif.", **d)
  flags.DEFINE_integer("keyframes", 4, "Random latents the loop passes through.", **d)
  flags.DEFINE_float("seconds", 8.0, "Length of the video.", **d)
  flags.DEFINE_integer("fps", 24, "Frames per second (1..60).", **d)
  flags.DEFINE_integer("size", 256, "Side of each tile in pixels (upscaled from the model's).", **d)
  flags.DEFINE_string("resize", "nearest", "nearest | bilinear upscaling of small images.", **d)
  flags.DEFINE_string("grid", "1x1", "RxC walks at once, each from its own keyframes.", **d)
  flags.DEFINE_string("space", "z", "z, or w for StyleGAN-class runs (walks after the mapping).", **d)
  flags.DEFINE_string("interp", "slerp", "slerp | lerp | cubic (Catmull-Rom through the keyframes).", **d)
  flags.DEFINE_string("classes", None, "Conditional models: morph through these classes "
                      "(names or indices, A,B[,C...]) with each tile's latent fixed.", **d)
  flags.DEFINE_string("mixing", None, "StyleGAN-class: walk only the coarse (4x4-8x8) or the "
                      "fine styles, the others fixed at the first keyframe.", **d)
  flags.DEFINE_float("truncation", None, "StyleGAN-class: truncation psi.", **d)
  flags.DEFINE_integer("seed", 0, "Random seed of the keyframes (and of the music).", **d)
  flags.DEFINE_string("music", None, "A Music Transformer run: a chorale as long as the video, "
                      "rendered and muxed into the MP4 as AAC.", **d)
  flags.DEFINE_string("mode", None, "With --music: major | minor | alternate.", **d)
  flags.DEFINE_string("content", None, "A style morph instead of a walk: this picture, "
                      "morphing through --styles (no --workdir).", **d)
  flags.DEFINE_string("styles", None, "With --content: A.png,B.png[,C.png...] in order.", **d)
  flags.DEFINE_integer("steps", 40, "With --content: optimisation steps per frame after the first.", **d)
  flags.DEFINE_integer("first_steps", 300, "With --content: steps of the first frame.", **d)
  flags.DEFINE_bool("warm_start", True, "With --content: each frame starts from the one before "
                    "(false: from the content, the flicker baseline).", **d)


def run(FLAGS, args, argv):
  if FLAGS.content is not None:
    if FLAGS.workdir:
      raise ConfigError("give --workdir (a latent walk) or --content with --styles (a style "
                        "morph), not both")
    need(FLAGS, "content", "styles", "out", command="animate")
    from artjax.commands import style_morph
    d = check_args({k: FLAGS[k].value for k in (
        "out", "fps", "keyframes", "size", "seconds", "interp", "truncation", "mixing", "grid")})
    style_morph.morph_video(
        FLAGS.content, [p for p in FLAGS.styles.split(",") if p], FLAGS.out, d, fps=FLAGS.fps,
        size=FLAGS.size, seed=FLAGS.seed, steps=FLAGS.steps, first_steps=FLAGS.first_steps,
        warm=FLAGS.warm_start)
    return 0
  need(FLAGS, "workdir", "out", command="animate")
  if FLAGS.resize not in ("nearest", "bilinear"):
    raise ConfigError(f"--resize must be nearest or bilinear, got {FLAGS.resize!r}")
  animate(FLAGS.workdir, FLAGS.out, **{k: FLAGS[k].value for k in (
      "keyframes", "seconds", "fps", "size", "resize", "grid", "space", "interp", "classes",
      "mixing", "truncation", "seed", "music", "mode")})
