"""Fine-tuning a pretrained poetry model to one poet (the seed's "style"): full, LoRA and
prefix-tuning on the training loop (`configs/poetry.py:METHOD_libai`), judged by a poet
classifier the project trains (artjax.poetry.attribution: character n-gram logistic
regression over the 20 most prolific poets, its held-out accuracy reported beside) and by
bits per character on the poet's held-out poems.

  python benchmarks/poetry_finetune.py --pretrained=runs/poetry [--steps=300] [--num=64]

Rows: the pretrained model with "any author", the pretrained model given the poet's
control token, and each fine-tuned model; the same seeds and forms for every row.
"""

from __future__ import annotations

import argparse
import json
import math
import os

import jax

from benchmarks import common
from artjax.engine import checkpoint, workdir as runs
from artjax.tasks import open_run
from artjax.poetry.attribution import PoetClassifier
from artjax.tasks.training import train

FORMS = ("wujue", "qijue", "wulu", "qilu")


def samples(task, state, author: str, num: int, seed: int) -> list[str]:
  c = task.config.sample
  old = (c.form, c.author, c.acrostic, c.constrained)
  out = []
  try:
    for i, form in enumerate(FORMS):
      c.form, c.author, c.acrostic, c.constrained = form, author, "", True
      s = jax.jit(lambda st: task.sample(st, seed + i, num // len(FORMS)))(state)
      out += task.decode(s["tokens"])
  finally:
    c.form, c.author, c.acrostic, c.constrained = old
  return out


def poet_bits(task, state, poet: str) -> float:
  seqs = task.sequences("test", author=poet)
  total, n = jax.jit(task.nll_sum)(state, seqs)
  return float(total) / float(n) / math.log(2)


def row(name, task, state, clf, poet, author, args) -> dict:
  bodies = samples(task, state, author, args.num, args.seed)
  r = {"model": name, "author_token": author or "any", "poet_share": clf.share(bodies, poet),
       "poet_test_bits_per_char": poet_bits(task, state, poet), "examples": bodies[:2]}
  print(json.dumps(r, ensure_ascii=False), flush=True)
  return r


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("--pretrained", default="runs/poetry")
  p.add_argument("--work", default="runs/poetry_ft")
  p.add_argument("--steps", type=int, default=300)
  p.add_argument("--num", type=int, default=64)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--methods", default="full,lora,prefix")
  p.add_argument("--set", default="", help="config overrides for every method, e.g. "
                 "optim.lr=5e-3,finetune.lora_rank=16 (the work dir should differ per setting)")
  args = p.parse_args(argv)
  task, state = open_run(args.pretrained)
  poems = task.poems()
  clf = PoetClassifier(poems)
  base = runs.load_config(args.pretrained)
  ft_config = common.cli.load_config(os.path.join(common.ROOT, "configs/poetry.py:lora_libai"))
  poet = ft_config.data.author
  rows = [row("pretrained", task, state, clf, poet, "", args)]
  if poet in task.vocab.authors:
    rows.append(row("pretrained + poet token", task, state, clf, poet, poet, args))
  for method in args.methods.split(","):
    c = common.cli.load_config(os.path.join(common.ROOT, f"configs/poetry.py:{method}_libai"))
    c.data.update(source_dir=base.data.source_dir, data_dir=base.data.data_dir)
    c.finetune.init_from = os.path.abspath(args.pretrained)
    c.train.update(steps=args.steps, eval_every=0, ckpt_every=0)
    for item in filter(None, args.set.split(",")):
      key, value = item.split("=", 1)
      *path, leaf = key.split(".")
      node = c
      for k in path:
        node = node[k]
      node[leaf] = type(node[leaf])(value)
    wd = os.path.join(args.work, method)
    if not (os.path.isdir(wd) and checkpoint.steps(wd)):
      train(c, wd, quiet=True)
    ft_task, ft_state = open_run(wd)
    rows.append(row(f"fine-tuned: {method} ({args.steps} steps)", ft_task, ft_state, clf, poet,
                    poet, args))
  result = {"machine": common.machine(), "args": vars(args), "poet": poet,
            "classifier": {"poets": clf.poets, "test_accuracy": clf.test_accuracy,
                           "test_poems": clf.test_n, "majority_class_share": clf.chance},
            "poet_train_poems": int(len(task.sequences("train", author=poet))), "rows": rows}
  common.save("poetry_finetune", result)
  print(f"| model | author token | samples attributed to {poet} | bits/char on {poet}'s held-out poems |")
  print("|---|---|---|---|")
  for r in rows:
    print(f"| {r['model']} | {r['author_token']} | {r['poet_share']:.2f} | {r['poet_test_bits_per_char']:.3f} |")
  print(f"classifier: {len(clf.poets)} poets, held-out accuracy {clf.test_accuracy:.2f} on "
        f"{clf.test_n} poems (majority class {clf.chance:.2f}); {poet} has "
        f"{result['poet_train_poems']} training poems")


if __name__ == "__main__":
  main()
