"""Poems as calligraphy sheets: vertical columns read right to left in a brush (楷) font.

Each poem is one sheet of rice-paper colour with red column rules (烏絲欄): the title in
the rightmost column, the form's name below it, then one column per verse (punctuation
dropped, as a calligrapher writes), and a red seal. The font is Debian's AR PL UKai
(`fonts-arphic-ukai`, a 楷書 brush face) found through fontconfig; any other CJK font is the
fallback (with a note), and a clear error comes when there is none."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys

import numpy as np

from artjax import ConfigError

FORM_NAMES = {"wujue": "五言絕句", "qijue": "七言絕句", "wulu": "五言律詩", "qilu": "七言律詩",
              "other": "古體", "ci": "詞"}
PAPER, INK, RED = (244, 236, 216), (26, 24, 22), (178, 34, 34)
PUNCT = "，。？！；：、,.?!;: "


def _fc(*args) -> list[str]:
  if shutil.which("fc-list") is None:
    return []
  out = subprocess.run(["fc-list", *args], capture_output=True, text=True, check=False).stdout
  return [line.split(":")[0].strip() for line in out.splitlines() if line.strip()]


@functools.lru_cache(maxsize=1)
def find_font() -> str:
  """The path of AR PL UKai, else of any CJK font (with a note on stderr); ConfigError when
  fontconfig knows none."""
  ukai = [f for f in _fc(":family=AR PL UKai TW", "file") + _fc(":lang=zh", "file")
          if "ukai" in f.lower()]
  if ukai:
    return sorted(ukai)[0]
  cjk = sorted(_fc(":lang=zh", "file"))
  if cjk:
    print(f"note: the brush font AR PL UKai (Debian: fonts-arphic-ukai) is missing; writing in "
          f"{cjk[0]}", file=sys.stderr)
    return cjk[0]
  raise ConfigError("--png needs a CJK font: install Debian's fonts-arphic-ukai (the brush font "
                    "used) or any font fontconfig lists for `fc-list :lang=zh`")


def columns(body: str) -> list[str]:
  """The poem's verses without punctuation."""
  out, cur = [], ""
  for ch in body:
    if ch in PUNCT:
      if cur:
        out.append(cur)
      cur = ""
    elif not ch.isspace():
      cur += ch
  return out + ([cur] if cur else [])


def sheet(body: str, title: str, form: str, font_path: str, cell: int = 64) -> np.ndarray:
  """uint8 [H, W, 3]: one poem's sheet (right to left, top to bottom)."""
  from PIL import Image, ImageDraw, ImageFont
  verses = columns(body) or [""]
  rows = max(max(len(v) for v in verses), len(title) + 1, 4)
  ncols = len(verses) + 2                                # title, form, verses
  margin = cell
  w, h = margin * 2 + ncols * cell, margin * 2 + rows * cell
  img = Image.new("RGB", (w, h), PAPER)
  draw = ImageDraw.Draw(img)
  big = ImageFont.truetype(font_path, int(cell * 0.78))
  small = ImageFont.truetype(font_path, int(cell * 0.42))
  for c in range(ncols + 1):                            # 烏絲欄: red column rules
    x = w - margin - c * cell
    draw.line([(x, margin), (x, h - margin)], fill=RED, width=2 if c in (0, ncols) else 1)
  draw.rectangle([margin, margin, w - margin, h - margin], outline=RED, width=2)

  def column(k, chars, font, step):
    x = w - margin - (k + 1) * cell + cell // 2
    for i, ch in enumerate(chars):
      draw.text((x, margin + i * step + step // 2), ch, font=font, fill=INK, anchor="mm")
  column(0, title, big, cell)
  column(1, FORM_NAMES.get(form, form), small, cell // 2)
  for k, verse in enumerate(verses):
    column(k + 2, verse, big, cell)
  size = int(cell * 0.7)
  _seal(draw, (margin - size) // 2, h - margin - size, size, small)    # left of the frame
  return np.asarray(img)


def _seal(draw, x, y, size, font):
  """A red seal square (藝 in paper colour)."""
  draw.rectangle([x, y, x + size, y + size], fill=RED)
  draw.text((x + size // 2, y + size // 2), "藝", font=font, fill=PAPER, anchor="mm")


def write_sheets(bodies, forms, path: str, titles=None, per_row: int = 4):
  """All poems' sheets tiled right to left, `per_row` to a row, into one PNG."""
  from PIL import Image
  font = find_font()
  titles = titles or ["無題"] * len(bodies)
  sheets = [sheet(b, t, f, font) for b, t, f in zip(bodies, titles, forms)]
  hh, ww = max(s.shape[0] for s in sheets), max(s.shape[1] for s in sheets)
  nrow = -(-len(sheets) // per_row)
  ncol = min(per_row, len(sheets))
  canvas = np.full((nrow * hh, ncol * ww, 3), 255, np.uint8)
  for i, s in enumerate(sheets):
    r, c = divmod(i, per_row)
    x = (ncol - 1 - c) * ww                              # the first poem on the right
    canvas[r * hh:r * hh + s.shape[0], x + ww - s.shape[1]:x + ww] = s
  Image.fromarray(canvas).save(path, format="PNG")   # a path or a binary file
