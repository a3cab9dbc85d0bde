"""`run.py sample`: draw samples from a trained workdir and write them as files."""

from __future__ import annotations

import os

import jax
from absl import flags

from artjax import ConfigError
from artjax.commands.options import check_outputs, need
from artjax.tasks import open_run
from artjax.tasks.open import check_sample_options

MAX_NUM = 65536


def sample_to_file(workdir: str, num: int, out: str, *, seed: int = 0, grid: str | None = None,
                   replica: int | None = None, options: dict | None = None):
  """Samples `num` items from the latest checkpoint into `out` (the task's file format).

  `options`: per-call overrides of the task's declared `sample_options` (None = unset)."""
  if not 0 < num <= MAX_NUM:
    raise ConfigError(f"--num must be in 1..{MAX_NUM:,} (one call holds every sample in memory; "
                      f"sample larger sets with several --seed values), got {num:,}")
  check_outputs({"--out": out if out.endswith((".npz", ".txt")) else None, "--grid": grid},
                {"--prime": (options or {}).get("prime")})
  options = {k: v for k, v in (options or {}).items() if v is not None}
  call = {k: options.pop(k) for k in CALL_OPTIONS if k in options}   # the rest: config.sample
  task, state = open_run(workdir, replica=replica, sample=options)
  check_sample_options(task, call)
  if grid:
    task.check_grid(grid)
  if task.sample_kind == "images" and not out.endswith(".npz"):
    raise ConfigError(f"--out={out}: image samples are written as an .npz file (e.g. {out.rstrip('/')}.npz)")
  if call.get("latents"):
    return _given_latents(task, state, call, out, grid, seed)
  prime, cls = call.get("prime"), call.get("class")
  opening = task.read_opening(prime) if prime else None
  if cls is not None:
    opening = task.unwrapped.class_index(cls)
  fn = jax.jit(lambda st, sd, n: task.sample(st, sd, n, opening), static_argnums=2)
  samples = jax.device_get(fn(state, seed, num))
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  task.write_samples(samples, out, grid)
  print(f"wrote {num} samples to {out}" + (f" and a grid to {grid}" if grid else ""))
  return samples


def _given_latents(task, state, options, out, grid, seed):
  from artjax.commands import latents_file
  noise_mode = options.pop("noise_mode", None) or "const"
  if noise_mode not in task.unwrapped.noise_modes:
    raise ConfigError(f"--noise_mode={noise_mode!r}: choose one of "
                      f"{', '.join(task.unwrapped.noise_modes)}")
  for bad in ("prime", "class"):
    if options.get(bad) is not None:
      raise ConfigError(f"--{bad} and --latents: the latents file says what to draw")
  latents = latents_file.read(options.pop("latents"), task.unwrapped, MAX_NUM)
  samples = latents_file.render(task.unwrapped, state, latents, noise_mode, seed)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  task.write_samples(samples, out, grid)
  n = len(samples["images"])
  print(f"wrote {n} images of the given latents to {out}" + (f" and a grid to {grid}" if grid else ""))
  return samples


SUMMARY = "samples as files (images: npz + PNG; music: MIDI, WAV, PNG; poems: text)"
USAGE = "sample --workdir=DIR --out=FILE [--num=N] [--seed=S] [--grid=FILE.png] [options]"
#: options of one call that are not config values (the others go to the task's config.sample)
CALL_OPTIONS = ("prime", "class", "latents", "noise_mode")
#: per-call sampling options (each applies to the tasks that declare it in sample_options)
OPTIONS = ("prime", "temperature", "top_p", "max_tokens", "guidance", "mode", "key_guidance", "tonic",
           "instruments", "audio", "mood", "form", "acrostic", "author", "rhyme", "strict", "template", "rhyme_group", "tune",
           "truncation", "class", "latents", "noise_mode")


def define(fv, argv):
  d = dict(flag_values=fv)
  flags.DEFINE_string("workdir", None, "The trained run directory.", **d)
  flags.DEFINE_integer("num", 100, "Number of samples.", **d)
  flags.DEFINE_string("out", None, "Output: .npz (images), a directory of MIDI/WAV/PNG (music) "
                      "or a .txt file (poems).", **d)
  flags.DEFINE_integer("seed", 0, "Random seed.", **d)
  flags.DEFINE_string("grid", None, "Optional PNG grid of the samples (poems: calligraphy "
                      "sheets, the same as --png).", **d)
  flags.DEFINE_string("png", None, "Poetry: the poems as vertical calligraphy sheets in a "
                      "brush font (one PNG).", **d)
  flags.DEFINE_integer("replica", None, "Which replica of a population.", **d)
  flags.DEFINE_string("prime", None, "Music: a MIDI file whose frames open every sample; "
                      "poetry: the first characters of every poem.", **d)
  flags.DEFINE_float("temperature", None, "Music/poetry: override the config's temperature.", **d)
  flags.DEFINE_float("top_p", None, "Music/poetry: override the config's nucleus top-p.", **d)
  flags.DEFINE_integer("max_tokens", None, "Music on your MIDI (midi:): the most tokens a sample "
                       "may have (the config's: 0 = 8 x sample.num_frames).", **d)
  flags.DEFINE_float("guidance", None, "Music: classifier-free guidance scale for the mode token.", **d)
  flags.DEFINE_string("mode", None, "Music: alternate | major | minor (the requested mode).", **d)
  flags.DEFINE_float("key_guidance", None, "Music: key-profile steering weight towards --mode.", **d)
  flags.DEFINE_integer("tonic", None, "Music: tonic pitch class 0-11 (0 = C) for key steering.", **d)
  flags.DEFINE_string("instruments", None, "Music: General MIDI instruments of soprano..bass "
                      "(e.g. choir, or violin,viola,cello,contrabass), rendered by FluidSynth.", **d)
  flags.DEFINE_string("audio", None, "Music: audio file format wav | ogg | mp3.", **d)
  flags.DEFINE_string("mood", None, "Music: VALENCE,AROUSAL in [-1, 1] each (e.g. 0.8,0.6 "
                      "happy, -0.7,-0.5 sad) -> mode, tempo and register (artjax/music/mood.py).",
                      **d)
  flags.DEFINE_string("form", None, "Poetry: wujue | qijue | wulu | qilu (ci for a model of "
                      "ci).", **d)
  flags.DEFINE_string("acrostic", None, "Poetry: each verse's first character (藏头诗).", **d)
  flags.DEFINE_string("author", None, "Poetry: write as this poet (a control token).", **d)
  flags.DEFINE_string("tune", None, "Poetry, a model of ci: the tune (詞牌, e.g. 浣溪沙): its "
                      "control token and, constrained, its shape (--strict: and rhymes).", **d)
  flags.DEFINE_bool("rhyme", None, "Poetry: even verses rhyme (one group per poem).", **d)
  flags.DEFINE_bool("strict", None, "Poetry: every poem passes the 平水韻 rhyme and tone tests "
                    "(per-position tone masks, one rhyme group, no repeated characters).", **d)
  flags.DEFINE_string("template", None, "Poetry, --strict: 平起 | 仄起 | 平起首句入韻 | "
                      "平起首句不入韻 | 仄起首句入韻 | 仄起首句不入韻 (default: drawn per poem).", **d)
  flags.DEFINE_string("rhyme_group", None, "Poetry, --strict: a 平聲 group of the 平水韻, e.g. "
                      "上平聲一東 (default: drawn per poem).", **d)
  flags.DEFINE_float("truncation", None, "StyleGAN: truncation psi (1 = none, 0 = the mean "
                     "image; 0.7 trades variety for fidelity).", **d)
  flags.DEFINE_string("latents", None, "Image GANs: an .npz of your own latents to render: "
                      "'z' [N, z_dim] (+ 'labels' [N] or one-hot 'c' [N, classes] if "
                      "conditional); StyleGAN also 'w' [N, w_dim] or [N, num_ws, w_dim] (as "
                      "run.py project writes). Images as NVIDIA's generate.py writes them.", **d)
  flags.DEFINE_string("noise_mode", None, "StyleGAN with --latents: const (each layer's fixed "
                      "noise, the default) | random (from --seed) | none.", **d)
  flags.DEFINE_string("class", None, "Conditional image GANs: every sample of this class (a "
                      "name of the dataset's classes, e.g. emoji's 'Food & Drink', or an index).", **d)


def run(FLAGS, args, argv):
  need(FLAGS, "workdir", "out", command="sample")
  if FLAGS.png and FLAGS.grid:
    raise ConfigError("give --png or --grid, not both (for poems they are the same picture)")
  sample_to_file(FLAGS.workdir, FLAGS.num, FLAGS.out, seed=FLAGS.seed, grid=FLAGS.grid or FLAGS.png,
                 replica=FLAGS.replica, options={k: FLAGS[k].value for k in OPTIONS})
