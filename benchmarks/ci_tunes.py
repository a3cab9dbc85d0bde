"""Song ci by their tunes (issue #48, point 4): for the Song ci of chinese-poetry (MIT;
fetched with npm, about 21,000 poems, each with its tune name), how many tunes have a clear
pattern (clause lengths that at least half of the tune's poems have), the share of poems of
the 30 most common tunes with their tune's shape (with punctuation kinds and by clause
lengths only), and what `artjax.poetry.ci.derive` makes of each: the stanza break, the rhyme
positions, the rhyme's tone and the share of the tune's poems whose rhyme positions share
one 词林正韵 unit (artjax.poetry.cilin) - the corpus's own rate that strict decoding is
held to.

  python -m benchmarks.ci_tunes [--min_poems=10] [--share=0.5] [--write_text=songci.txt]

--write_text also writes the ci as a user's text file (`# tune`, the verses, a blank line
between): the `text:` corpus docs/poetry.md trains on.
"""

from __future__ import annotations

import argparse

from benchmarks import common
from artjax.poetry import ci
from artjax.poetry.data import songci


def song_ci(verses: bool = False) -> tuple[list, list]:
  """(tunes, bodies) of the Song ci; with `verses` each body keeps its paragraphs on lines."""
  rows = songci.read_song_ci()
  return ([t for t, _, _ in rows],
          [b if verses else b.replace("\n", "") for _, _, b in rows])


def derived(tunes, bodies, min_poems: int, share: float) -> dict:
  out = ci.derive_all(tunes, bodies, min_poems, share)
  top = sorted(out.values(), key=lambda t: (-t.poems, t.name))[:30]
  return {"tunes": len(out), "two_stanzas": sum(bool(t.stanza) for t in out.values()),
          "top30_rhyme_share": sum(t.rhyme_share * t.poems * t.share for t in top)
          / sum(t.poems * t.share for t in top),
          "top30": [{"tune": t.name, "poems": t.poems, "share": round(t.share, 3),
                     "template": t.template().replace(ci.BREAK, "/"), "rhymes": list(t.rhymes),
                     "tone": t.tone, "rhyme_share": round(t.rhyme_share, 3)} for t in top]}


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
  out["derived"] = derived(tunes, bodies, a.min_poems, a.share)
  print(f"derived: {out['derived']['tunes']} tunes ({out['derived']['two_stanzas']} with two "
        f"stanzas); the 30 most common tunes' poems of their shape rhyme in one 词林正韵 unit at "
        f"its rhyme positions at {out['derived']['top30_rhyme_share']:.3f}")
  common.save("ci_tunes", out)


if __name__ == "__main__":
  main()
