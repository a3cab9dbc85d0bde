"""Song ci by their tunes (issue #48, point 4, the measurement it starts from): for the Song ci
of chinese-poetry (MIT; fetched with npm, about 21,000 poems, each with its tune name), how many
tunes have a clear pattern (a shape - clause lengths and stops - that at least half of the
tune's poems follow), and the share of poems of the 30 most common tunes that follow their
tune's pattern, with punctuation kinds and by clause lengths only.

  python -m benchmarks.ci_tunes [--min_poems=10] [--share=0.5] [--write_text=songci.txt]

--write_text also writes the ci as a user's text file (`# tune`, the verses, a blank line
between): the `text:` corpus docs/poetry.md trains on.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re

from benchmarks import common
from artjax.engine import data as data_lib
from artjax.sources import npm
from artjax.poetry import ci


def song_ci(verses: bool = False) -> tuple[list, list]:
  """(tunes, bodies) of the Song ci; with `verses` each body keeps its paragraphs on lines."""
  cache = os.path.join(data_lib.default_data_dir(), "downloads", "chinese-poetry-songci")
  if not glob.glob(os.path.join(cache, "**", "ci.song.*.json"), recursive=True):
    npm.npm_pack("chinese-poetry", cache, lambda n: re.search(r"songci/ci\.song\.\d+\.json$", n),
                      "npm is needed to fetch chinese-poetry", size="85 MB")
  tunes, bodies = [], []
  for p in sorted(glob.glob(os.path.join(cache, "**", "ci.song.*.json"), recursive=True)):
    for x in json.load(open(p, encoding="utf-8")):
      body = ("\n" if verses else "").join(x.get("paragraphs") or [])
      if body:
        tunes.append(str(x.get("rhythmic") or ""))
        bodies.append(body)
  return tunes, bodies


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--min_poems", type=int, default=10)
  ap.add_argument("--share", type=float, default=0.5)
  ap.add_argument("--write_text", default="")
  a = ap.parse_args(argv)
  if a.write_text:
    with open(a.write_text, "w", encoding="utf-8") as f:
      for t, b in zip(*song_ci(verses=True)):
        f.write(f"# {t}\n{b}\n\n")
    print(f"wrote {a.write_text}")
  tunes, bodies = song_ci()
  out = {"poems": len(bodies), "tunes": len(set(tunes)), "min_poems": a.min_poems, "share": a.share}
  for lengths_only in (False, True):
    pats = ci.tune_patterns(tunes, bodies, a.min_poems, a.share, lengths_only)
    top = sorted(pats, key=lambda t: -pats[t]["poems"])[:30]
    key = "lengths_only" if lengths_only else "with_stops"
    out[key] = {"tunes_with_min_poems": len(pats), "clear": sum(p["clear"] for p in pats.values()),
                "top30": [{"tune": t, "poems": pats[t]["poems"], "share": round(pats[t]["share"], 3),
                           "pattern": ci.text_of(pats[t]["pattern"])} for t in top],
                "top30_share": sum(pats[t]["share"] * pats[t]["poems"] for t in top)
                / sum(pats[t]["poems"] for t in top)}
    print(f"{key}: {out[key]['clear']} of {len(pats)} tunes with >= {a.min_poems} poems have a clear "
          f"pattern; the 30 most common tunes' poems follow theirs at {out[key]['top30_share']:.3f}")
  common.save("ci_tunes", out)


if __name__ == "__main__":
  main()
