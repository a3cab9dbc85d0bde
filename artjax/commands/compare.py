"""`run.py compare`: a side-by-side table of evaluated runs (their eval.json)."""

from __future__ import annotations

import json
import os

from artjax import ConfigError
from artjax.commands.evaluate import HEADLINE, fmt

SUMMARY = "side-by-side table of evaluated runs (after run.py eval)"
USAGE = "compare DIR_A DIR_B ..."
POSITIONAL = True


def define(fv, argv):
  pass


def compare(workdirs) -> str:
  rows = []
  for wd in workdirs:
    path = os.path.join(wd, "eval.json")
    if not os.path.exists(path):
      raise ConfigError(f"no eval.json in {wd!r}: run `python run.py eval --workdir={wd}` first")
    with open(path) as f:
      rows.append((wd, json.load(f)))
  head = "| run | step | " + " | ".join(HEADLINE) + " | fdd/floor |"
  lines = [head, "|" + "---|" * (len(HEADLINE) + 3)]
  for wd, r in rows:
    s = r["samples"]
    lines.append(f"| {os.path.basename(os.path.normpath(wd))} | {r['step']} | " +
                 " | ".join(fmt(s.get(k)) for k in HEADLINE) +
                 f" | {s['fdd'] / max(r['floor']['fdd'], 1e-9):.2f} |")
  f = rows[0][1]["floor"]
  lines.append("| real floor | - | " + " | ".join(fmt(f.get(k)) for k in HEADLINE) + " | 1.00 |")
  table = "\n".join(lines)
  print(table)
  return table


def run(FLAGS, args, argv):
  if not args:
    raise ConfigError("compare needs one or more workdirs: run.py compare DIR_A DIR_B ...")
  compare(args)
