"""The 平水韻 measure (artjax/poetry/pingshui.py) on the corpus itself: per form, the share of
held-out (test split) and training Tang poems that rhyme by one 平聲 group, that keep one of
the four tonal templates (一三五不論, no 孤平, no 三平尾), and both -- beside the modern
Mandarin (pypinyin) measures of artjax/poetry/metrics.py on the same poems. The floor a
model's samples are compared with in `run.py eval`.

  python -m benchmarks.pingshui_corpus [--data_dir=DIR] [--source_dir=DIR]
"""

from __future__ import annotations

import argparse

import numpy as np

from artjax.poetry import metrics, pingshui, text
from artjax.poetry.data import load_poetry
from benchmarks import common


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--data_dir", default=None)
  p.add_argument("--source_dir", default="")
  args = p.parse_args(argv)
  poems = load_poetry(args.source_dir, args.data_dir).splits
  rows = []
  print("| split | form | n | 平水韻 rhyme | 平水韻 tones | both | unknown chars | pypinyin rhyme | pypinyin tonal rules |")
  print("|---|---|---|---|---|---|---|---|---|")
  for split in ("test", "train"):
    for form in pingshui.SHAPES:
      bodies = [b for b, f in zip(poems[split]["body"], poems[split]["form"]) if text.FORMS[int(f)] == form]
      r = pingshui.rates(bodies, form)
      rh = [x for x in (metrics.rhymes(b) for b in bodies) if x is not None]
      tc = [x for x in (metrics.tonal_compliance(b) for b in bodies) if x is not None]
      r.update(split=split, form=form, pypinyin_rhyme=float(np.mean(rh)) if rh else None,
               pypinyin_tonal=float(np.mean(tc)) if tc else None)
      rows.append(r)
      print(f"| {split} | {form} | {r['n']} | {r['rhyme']:.3f} | {r['tones']:.3f} | {r['regulated']:.3f} | "
            f"{r['unknown_chars']:.4f} | {r['pypinyin_rhyme']:.3f} | {r['pypinyin_tonal']:.3f} |")
  common.save("pingshui_corpus", {"rows": rows})


if __name__ == "__main__":
  main()
