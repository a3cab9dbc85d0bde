"""`run.py eval`: a trained run's samples judged against held-out data (eval.json, eval.md,
pictures where they help); the task declares how (`Task.report`)."""

from __future__ import annotations

from absl import flags

from artjax.commands.options import need
from artjax.tasks import open_run
from artjax.tasks.image_report import HEADLINE, fmt  # noqa: F401  (compare's table)

SUMMARY = "quality, coverage, copying of a run's samples, each beside its real-data floor"
USAGE = "eval --workdir=DIR [--num=N] [--seed=S] [--best] [--replica=R] [--inception=FILE.pth]"


def define(fv, argv):
  d = dict(flag_values=fv)
  flags.DEFINE_string("workdir", None, "The trained run directory.", **d)
  flags.DEFINE_integer("num", None, "Samples to judge (default: the task's, e.g. the size of "
                       "the validation split for images, 32 for music and poems).", **d)
  flags.DEFINE_integer("seed", 0, "Random seed of the samples.", **d)
  flags.DEFINE_bool("best", False, "Judge the best checkpoint (by the task's validation "
                    "metric) instead of the latest.", **d)
  flags.DEFINE_integer("replica", None, "Which replica of a population.", **d)
  flags.DEFINE_string("inception", None, "Image generators: the FID Inception-v3 weights "
                      "(pt_inception-2015-12-05-6726825d.pth, as pytorch-fid and StyleGAN2-ADA "
                      "use; never downloaded) for FID/KID/precision/recall in its features, "
                      "against train and test, beside the real floor.", **d)


def evaluate_workdir(workdir: str, num: int | None = None, seed: int = 0, best: bool = False,
                     replica: int | None = None, inception: str | None = None) -> dict:
  """The task's report of a workdir's latest (or best) checkpoint; the runs it needs (an
  image dataset's evaluator) are trained first, once."""
  from artjax.tasks.training import ensure_trained
  task, state = open_run(workdir, best=best, replica=replica)
  for config, wd in task.requirements(True):
    ensure_trained(config, wd)
  suffix = "" if replica is None else f"_r{replica}"
  options = {"inception": inception} if inception else None
  return task.report(state, num, seed, workdir, suffix, "best" if best else "latest", options)


def run(FLAGS, args, argv):
  need(FLAGS, "workdir", command="eval")
  evaluate_workdir(FLAGS.workdir, FLAGS.num, seed=FLAGS.seed, best=FLAGS.best,
                   replica=FLAGS.replica, inception=FLAGS.inception)
