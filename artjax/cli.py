"""Command-line entry points behind run.py: one function per command; parse, validate,
hand off to the library. `main(argv)` is also the in-process entry (tests call it)."""

from __future__ import annotations

import os
import re
import sys

from absl import flags, logging as absl_logging
from ml_collections import config_flags

from artjax import ConfigError

SAMPLE_OPTIONS = ("prime", "temperature", "top_p", "guidance", "mode", "key_guidance", "tonic",
                  "form", "acrostic", "author", "rhyme")


def define_flags(argv) -> flags.FlagValues:
  """A fresh set of the launcher's flags (each in-process call parses its own)."""
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "Config file: configs/NAME.py[:ARG].",
                                   flag_values=fv, lock_config=True, sys_argv=list(argv))
  d = dict(flag_values=fv)
  flags.DEFINE_string("workdir", None, "Run directory (checkpoints, logs, samples).", **d)
  flags.DEFINE_integer("num", 100, "sample: number of samples.", **d)
  flags.DEFINE_string("out", None, "sample: output .npz file (music: a directory of "
                      "MIDI/WAV/PNG); merge: output workdir.", **d)
  flags.DEFINE_string("prime", None, "sample (music): a MIDI file whose frames open every sample; "
                      "(poetry): the first characters of every poem.", **d)
  flags.DEFINE_string("form", None, "sample (poetry): wujue | qijue | wulu | qilu | free.", **d)
  flags.DEFINE_string("acrostic", None, "sample (poetry): each verse's first character (藏头诗).", **d)
  flags.DEFINE_string("author", None, "sample (poetry): write as this poet (a control token).", **d)
  flags.DEFINE_bool("rhyme", None, "sample (poetry): even verses rhyme (one group per poem).", **d)
  flags.DEFINE_float("temperature", None, "sample (music): override the config's temperature.", **d)
  flags.DEFINE_float("top_p", None, "sample (music): override the config's nucleus top-p.", **d)
  flags.DEFINE_float("guidance", None, "sample (music): classifier-free guidance scale for the "
                     "mode token.", **d)
  flags.DEFINE_string("mode", None, "sample (music): alternate | major | minor (the requested mode).", **d)
  flags.DEFINE_float("key_guidance", None, "sample (music): key-profile steering weight towards --mode.", **d)
  flags.DEFINE_integer("tonic", None, "sample (music): tonic pitch class 0-11 (0 = C) for key steering.", **d)
  flags.DEFINE_integer("seed", 0, "sample: random seed.", **d)
  flags.DEFINE_string("grid", None, "sample: optional PNG grid of the samples.", **d)
  flags.DEFINE_integer("replica", None, "sample/eval: which replica of a population.", **d)
  flags.DEFINE_string("init_from", None, "finetune: the pretrained workdir.", **d)
  flags.DEFINE_bool("best", False, "eval/export: use the best checkpoint (by validation FDD).", **d)
  _define_stylize_flags(d)
  flags.DEFINE_string("images", None, "repair: IN.npz with 'images' uint8 [N,H,W,C].", **d)
  flags.DEFINE_string("masks", None, "repair: MASKS.npz with 'masks' bool [N,H,W] (True = missing).", **d)
  flags.DEFINE_string("image", None, "repair: one image (PNG) to repair, with --mask.", **d)
  flags.DEFINE_string("method", "auto", "repair: auto | invert (GAN runs) | net (inpainting runs).", **d)
  flags.DEFINE_integer("restarts", None, "repair --method=invert: random starts per image and class.", **d)
  flags.DEFINE_string("host", "127.0.0.1", "serve: address to listen on.", **d)
  flags.DEFINE_integer("port", 8080, "serve: TCP port (0 = any free port).", **d)
  flags.DEFINE_string("token", None, "serve: bearer token for /v1/* (or $ARTJAX_TOKEN).", **d)
  flags.DEFINE_integer("max_batch", 64, "serve: most image rows merged into one call.", **d)
  flags.DEFINE_float("max_wait_ms", 5.0, "serve: how long a call waits for more requests.", **d)
  flags.DEFINE_integer("max_num", 64, "serve: most images (pieces: at most 8) per request.", **d)
  flags.DEFINE_list("platforms", ["cpu"], "export: platforms of the artifact (cpu,cuda,rocm,tpu).", **d)
  flags.DEFINE_integer("bits", 8, "quantize: weight bits, 8 or 4 (16 = bf16 storage).", **d)
  flags.DEFINE_float("sparsity", 0.5, "prune: fraction of kernel weights zeroed (global magnitude).", **d)
  flags.DEFINE_string("sweep", None, "sweep: \"key=v1,v2;key2=v3,v4\" (config fields and "
                      "values; the grid's cells sharing shapes train as one population).", **d)
  flags.DEFINE_integer("finetune_steps", 0, "prune: recovery training steps with the mask fixed.", **d)
  return fv


def _define_stylize_flags(d):
  flags.DEFINE_string("content", None, "stylize: the content image (PNG/JPEG).", **d)
  flags.DEFINE_multi_string("style", [], "stylize: a style image (repeat for several).", **d)
  flags.DEFINE_list("style_weights", [], "stylize: one weight per --style (normalised).", **d)
  flags.DEFINE_float("style_mix", None, "stylize: with two --style images, the second's share.", **d)
  flags.DEFINE_integer("size", 256, "stylize: longest side of the result in pixels.", **d)
  flags.DEFINE_integer("steps", 350, "stylize: optimisation iterations over all scales.", **d)
  flags.DEFINE_integer("scales", 3, "stylize: coarse-to-fine scales (each half the next).", **d)
  flags.DEFINE_float("style_weight", 2.0, "stylize: weight of the style loss.", **d)
  flags.DEFINE_float("content_weight", 1.0, "stylize: weight of the content loss.", **d)
  flags.DEFINE_float("tv_weight", 0.0, "stylize: weight of the total-variation smoothing.", **d)
  flags.DEFINE_bool("preserve_color", False, "stylize: keep the content's colours (YIQ).", **d)
  flags.DEFINE_string("mask", None, "stylize: style only where this mask is white.", **d)
  flags.DEFINE_string("init", "content", "stylize: start from content | noise.", **d)
  flags.DEFINE_string("features", "random", "stylize: random | random_vgg | vgg19.", **d)
  flags.DEFINE_string("weights", None, "stylize --features=vgg19: VGG19 weights (.h5/.npz).", **d)
  flags.DEFINE_string("optimizer", "adam", "stylize: adam | lbfgs.", **d)
  flags.DEFINE_float("lr", 0.02, "stylize: Adam step size on pixels in [0, 1].", **d)
  flags.DEFINE_string("dtype", "fp32", "stylize: fp32 | bf16 feature products.", **d)


def load_config(spec: str, overrides=()):
  """The config of `configs/NAME.py[:ARG]` with run.py's `--config.x=y` overrides applied
  (benchmarks and scripts use the same parser as run.py; a bad one is one `error:` line)."""
  argv = ["artjax", f"--config={spec}", *overrides]
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "Config file.", flag_values=fv,
                                   lock_config=True, sys_argv=argv)
  parse_flags(fv, argv)
  return fv.config


def _fail(msg: str) -> None:
  print(f"error: {msg}", file=sys.stderr, flush=True)
  sys.exit(2)


def _innermost(e: BaseException) -> BaseException:
  while e.__cause__ is not None or e.__context__ is not None:
    e = e.__cause__ or e.__context__
  return e


def _config_spec_problem(argv) -> str | None:
  for a in argv:
    if a.startswith("--config="):
      path = a.split("=", 1)[1].split(":", 1)[0]
      if not os.path.isfile(path):
        return f"config file {path!r} does not exist (run from the repository root, e.g. --config=configs/gan.py)"
  return None


def parse_flags(fv, argv):
  """absl flag parsing with one-line errors (unknown config key, wrong type, ...)."""
  problem = _config_spec_problem(argv)
  if problem:
    _fail(problem)
  try:
    return fv(argv)
  except flags.Error as e:
    inner = _innermost(e)
    head = str(e).splitlines()[0].rstrip(":")
    detail = " ".join(str(inner).split())
    _fail(head if inner is e or detail in head else f"{head}: {detail}")
  except (KeyError, AttributeError) as e:
    text = str(e.args[0]) if e.args else str(e)
    text = text.encode().decode("unicode_escape").replace("\\'", "'")
    names = re.findall(r"'([A-Za-z_]\w*)'", text)
    key = names[0] if names else text.strip("'\" ")
    culprits = [a.split("=")[0][len("--config."):] for a in argv
                if a.startswith("--config.") and a.split("=")[0].split(".")[-1] == key]
    hint = re.search(r'Did you mean "(\w+)"', text)
    _fail(f"unknown config key {culprits[0] if culprits else key!r} (no such field in the config "
          f"file{'; did you mean ' + repr(hint.group(1)) + '?' if hint else ''})")
  except (TypeError, ValueError) as e:
    _fail(f"bad config: {' '.join(str(e).split())}")


def _need(FLAGS, *names, command):
  missing = [n for n in names if not FLAGS[n].value]
  if missing:
    raise ConfigError(f"{command} needs " + " and ".join(f"--{n}" for n in missing))


def cmd_train(FLAGS, args):
  from artjax.train import train
  _need(FLAGS, "config", "workdir", command="train")
  return _exit_code(train(FLAGS.config, FLAGS.workdir))


def _exit_code(summary) -> int:
  from artjax.train import EXIT_CODES
  return EXIT_CODES[summary["status"]]


def cmd_finetune(FLAGS, args):
  from artjax.train import train
  _need(FLAGS, "config", "workdir", command="finetune")
  c = FLAGS.config
  if c.finetune.method == "none":
    raise ConfigError("finetune needs a config with finetune.method set (configs/finetune.py:"
                      "full|top|freeze_d|lora|adapter|bitfit, configs/music.py:prefix_minor|lora_minor)")
  if FLAGS.init_from:
    c.finetune.init_from = FLAGS.init_from
  if not c.finetune.init_from:
    raise ConfigError("finetune needs --init_from=PRETRAINED_WORKDIR")
  return _exit_code(train(c, FLAGS.workdir))


def cmd_sample(FLAGS, args):
  from artjax.sample import sample_to_file
  _need(FLAGS, "workdir", "out", command="sample")
  sample_to_file(FLAGS.workdir, FLAGS.num, FLAGS.out, seed=FLAGS.seed, grid=FLAGS.grid,
                 replica=FLAGS.replica, options={k: FLAGS[k].value for k in SAMPLE_OPTIONS})


def load_evaluator(dataset: str, data_dir: str | None = None):
  """The dataset's evaluator classifier, trained by the loop on first use."""
  from artjax.evaluation import evaluator
  from artjax.train import ensure_trained
  ensure_trained(*evaluator.requirement(dataset, data_dir))
  return evaluator.Evaluator(dataset, data_dir)


def cmd_eval(FLAGS, args):
  from artjax import runs
  from artjax.evaluation.report import evaluate_workdir
  _need(FLAGS, "workdir", command="eval")
  config = runs.load_config(FLAGS.workdir)
  if config.task == "gan":
    load_evaluator(config.data.name, config.data.data_dir or None)
  evaluate_workdir(FLAGS.workdir, FLAGS.num if FLAGS["num"].present else None,
                   seed=FLAGS.seed, best=FLAGS.best, replica=FLAGS.replica)


def cmd_merge(FLAGS, args):
  from artjax.finetune import merge_workdir
  _need(FLAGS, "workdir", "out", command="merge")
  merge_workdir(FLAGS.workdir, FLAGS.out)


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


def cmd_stylize(FLAGS, args):
  from artjax import stylize
  if FLAGS.workdir:
    _need(FLAGS, "content", "out", command="stylize --workdir")
    stylize.run_network(FLAGS.workdir, FLAGS.content, FLAGS.out, size=(
        FLAGS.size if FLAGS["size"].present else None))
    return 0
  r = stylize.Request(
      content=FLAGS.content, styles=tuple(FLAGS.style), out=FLAGS.out, size=FLAGS.size,
      steps=FLAGS.steps, scales=FLAGS.scales, style_weight=FLAGS.style_weight,
      content_weight=FLAGS.content_weight, tv_weight=FLAGS.tv_weight,
      style_weights=_style_weights(FLAGS), preserve_color=FLAGS.preserve_color, mask=FLAGS.mask,
      init=FLAGS.init, features=FLAGS.features, weights=FLAGS.weights, optimizer=FLAGS.optimizer,
      lr=FLAGS.lr, seed=FLAGS.seed, dtype=FLAGS.dtype)
  stylize.run(r)


def cmd_repair(FLAGS, args):
  from artjax import repair
  _need(FLAGS, "workdir", "out", command="repair")
  repair.run(FLAGS.workdir, FLAGS.out, images=FLAGS.images, masks=FLAGS.masks, image=FLAGS.image,
             mask=FLAGS.mask, method=FLAGS.method, grid=FLAGS.grid, restarts=FLAGS.restarts,
             steps=FLAGS.steps if FLAGS["steps"].present else None, seed=FLAGS.seed)
  return 0


def cmd_export(FLAGS, args):
  from artjax import deploy
  _need(FLAGS, "workdir", "out", command="export")
  deploy.export_workdir(FLAGS.workdir, FLAGS.out, FLAGS.platforms, best=FLAGS.best)


def cmd_quantize(FLAGS, args):
  from artjax import deploy
  _need(FLAGS, "workdir", "out", command="quantize")
  deploy.quantize_workdir(FLAGS.workdir, FLAGS.out, FLAGS.bits)


def cmd_prune(FLAGS, args):
  from artjax import deploy
  _need(FLAGS, "workdir", "out", command="prune")
  deploy.prune_workdir(FLAGS.workdir, FLAGS.out, FLAGS.sparsity, FLAGS.finetune_steps)


def _repeated(argv, name: str) -> list[str]:
  """Every value of a repeated string flag (absl keeps only the last one)."""
  out, it = [], iter(argv)
  for a in it:
    if a.startswith(f"--{name}="):
      out.append(a.split("=", 1)[1])
    elif a == f"--{name}":
      out.append(next(it, ""))
  return out


def cmd_serve(FLAGS, args, argv=()):
  from artjax import serve
  return serve.serve(_repeated(argv, "workdir"), host=FLAGS.host, port=FLAGS.port,
                     token=FLAGS.token, max_batch=FLAGS.max_batch, max_wait_ms=FLAGS.max_wait_ms,
                     max_num=FLAGS.max_num)


def cmd_sweep(FLAGS, args):
  from artjax.sweep import run_sweep
  from artjax.train import train
  _need(FLAGS, "config", "workdir", "sweep", command="sweep")
  rows = run_sweep(FLAGS.config, FLAGS.workdir, FLAGS.sweep,
                   lambda c, wd: train(c, wd))
  print(f"sweep: {len(rows)} cells; {os.path.join(FLAGS.workdir, 'sweep.md')}")
  bad = [r for r in rows if r["status"] not in ("finished", "early_stopped")]
  return 3 if bad else 0


def cmd_compare(FLAGS, args):
  from artjax.evaluation.report import compare
  if not args:
    raise ConfigError("compare needs one or more workdirs: run.py compare DIR_A DIR_B ...")
  compare(args)


COMMANDS = {"train": cmd_train, "finetune": cmd_finetune, "sample": cmd_sample, "eval": cmd_eval,
            "compare": cmd_compare, "merge": cmd_merge, "stylize": cmd_stylize,
            "repair": cmd_repair, "export": cmd_export, "quantize": cmd_quantize,
            "prune": cmd_prune, "serve": cmd_serve, "sweep": cmd_sweep}


def dispatch(fv, argv, raw=()) -> int:
  """After flag parsing: argv[1] is the command, the rest its positional arguments; `raw`:
  the command line before parsing (for repeated flags)."""
  args = argv[1:]
  if not args or args[0] not in COMMANDS or (args[0] != "compare" and len(args) != 1):
    _fail(f"usage: run.py {{{'|'.join(COMMANDS)}}} [flags]; got {args}")
  absl_logging.set_verbosity(absl_logging.WARNING)
  try:
    if args[0] == "serve":
      return cmd_serve(fv, args[1:], raw) or 0
    return COMMANDS[args[0]](fv, args[1:]) or 0
  except ConfigError as e:
    _fail(str(e))


def main(argv) -> int:
  """Parses `argv` (argv[0] = program) and runs the command; returns the exit code."""
  try:
    fv = define_flags(argv)
    return dispatch(fv, parse_flags(fv, argv), argv)
  except SystemExit as e:
    return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
