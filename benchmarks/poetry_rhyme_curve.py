"""Why rhyme is not learned (issue #31, point 2): for each poetry run and each of its
checkpoints, the rhyme probe (the model's probability mass on the poem's 平水韻 group at
later rhyme positions, against the group's prior) and the 平水韻 rhyme and tone rates of
samples decoded with only the form's template, beside held-out poems of each form.

  python -m benchmarks.poetry_rhyme_curve --runs=runs/poetry,runs/poetry_regulated [--num=32]
"""

from __future__ import annotations

import argparse

from benchmarks import common
from artjax.engine import checkpoint
from artjax.poetry import pingshui, text
from artjax.tasks import open_run, poetry_report

FORMS = ("wujue", "qijue", "wulu", "qilu")


def point(workdir: str, step: int, num: int, seed: int) -> dict:
  task, state = open_run(workdir, step=step)
  held = task.poems().splits["test"]
  out = {"run": workdir, "step": step, "regulated_only": bool(task.config.data.get("regulated_only", False)),
         "probe": poetry_report.rhyme_probe(task, state), "forms": {}}
  for form in FORMS:
    samples = poetry_report._sample_bodies(task, state, form, num, seed)
    real = [b for b, f in zip(held["body"], held["form"]) if text.FORMS[int(f)] == form][:num]
    s, h = pingshui.rates(samples, form), pingshui.rates(real, form)
    out["forms"][form] = {"samples": s, "held_out": h,
                          "rhyme_share": s["rhyme"] / h["rhyme"], "tones_share": s["tones"] / h["tones"]}
  return out


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("--runs", default="runs/poetry,runs/poetry_regulated")
  p.add_argument("--num", type=int, default=32)
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(argv)
  rows = [point(wd, st, args.num, args.seed) for wd in args.runs.split(",")
          for st in checkpoint.steps(wd)]
  common.save("poetry_rhyme_curve", {"machine": common.machine(), "args": vars(args), "rows": rows})
  print("| run | step | probe: mass on the rhyme group / prior | " +
        " | ".join(f"{f} rhyme, tones (share of held-out)" for f in FORMS) + " |")
  print("|---|---|---|" + "---|" * len(FORMS))
  for r in rows:
    pr = r["probe"]
    print(f"| {r['run']} | {r['step']} | {pr['model_mass_on_group']:.3f} / {pr['prior_of_group']:.3f} "
          f"({pr['ratio']:.1f}x) | " + " | ".join(
              f"{f['rhyme_share']:.2f}, {f['tones_share']:.2f}" for f in r["forms"].values()) + " |")


if __name__ == "__main__":
  main()
