"""Poems as calligraphy sheets in Debian's AR PL UKai brush font (installed by
`make test-slow`): right-to-left columns, one per verse, punctuation dropped."""

import os

import numpy as np
import pytest
from PIL import Image

from helpers import run_cli

UKAI = "/usr/share/fonts/truetype/arphic/ukai.ttc"
pytestmark = pytest.mark.skipif(not os.path.exists(UKAI), reason="fonts-arphic-ukai is not installed")


def _ink_columns(img, cell=64, margin=64):
  """Per sheet column (right to left): the share of dark pixels."""
  dark = (np.asarray(img.convert("L")) < 100)[margin:-margin, margin:-margin]
  w = dark.shape[1] // cell
  return [dark[:, dark.shape[1] - (k + 1) * cell + 4:dark.shape[1] - k * cell - 4].mean()
          for k in range(w)]


def test_a_sheet_has_the_title_the_form_and_one_column_per_verse(tmp_path):
  from artjax.poetry import calligraphy
  assert "ukai" in calligraphy.find_font()
  body = "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。"
  calligraphy.write_sheets([body], ["wujue"], str(tmp_path / "a.png"), titles=["靜夜思"])
  img = Image.open(tmp_path / "a.png")
  assert img.size == (64 * 2 + 6 * 64, 64 * 2 + 5 * 64)        # 6 columns of 5 characters
  ink = _ink_columns(img)
  assert len(ink) == 6 and all(x > 0.01 for x in ink), ink       # title, form, 4 verses
  # the verse columns hold 5 full characters, the form column small ones: less ink
  assert ink[1] < min(ink[2:])
  # the same poem in another order draws other columns
  calligraphy.write_sheets(["低頭思故鄉，舉頭望明月。疑是地上霜，床前明月光。"], ["wujue"],
                           str(tmp_path / "b.png"), titles=["靜夜思"])
  a, b = np.asarray(img), np.asarray(Image.open(tmp_path / "b.png"))
  assert a.shape == b.shape and np.abs(a[:, :-3 * 64].astype(int) - b[:, :-3 * 64]).mean() > 1


def test_sample_png_tiles_every_poem(tmp_path):
  import helpers
  wd = helpers.poetry_run(tmp_path)
  out, png = tmp_path / "p.txt", tmp_path / "p.png"
  r = run_cli("sample", f"--workdir={wd}", "--num=6", "--form=qijue", "--strict",
              f"--out={out}", f"--png={png}")
  assert r.returncode == 0, r.stderr
  img = Image.open(png)
  sheet_w, sheet_h = 64 * 2 + 6 * 64, 64 * 2 + 7 * 64        # 4 verses of 7 characters
  assert img.size == (4 * sheet_w, 2 * sheet_h)               # 4 to a row, right to left
  a = np.asarray(img.convert("L"))
  assert (a[:sheet_h, -sheet_w:] < 100).mean() > 0.01          # the first poem, on the right
  assert (a[sheet_h:, :2 * sheet_w] == 255).all()              # the empty places stay blank


def test_ci_sheets_are_titled_by_their_tune_with_a_column_per_clause(tmp_path):
  """A model of ci (the fake checkout of known ci): `--png` draws each ci under its tune's
  name, 詞 below it, one column per clause; /v1/poems's PNG is the same sheets."""
  import helpers
  from artjax.tasks.training import train
  from configs.poetry import get_config
  c = get_config("ci,smoke")
  c.data.update(source_dir=str(helpers.ci_source(tmp_path / "src")), data_dir=str(tmp_path / "data"),
                min_count=1, max_chars=64)
  c.train.update(steps=10)
  wd = str(tmp_path / "run")
  train(c, wd, quiet=True)
  out, png = tmp_path / "c.txt", tmp_path / "c.png"
  r = run_cli("sample", f"--workdir={wd}", "--num=2", "--tune=菩萨蛮", "--strict", "--seed=3",
              f"--out={out}", f"--png={png}")
  assert r.returncode == 0, r.stderr
  img = Image.open(png)
  sheet_w = 64 * 2 + (2 + 8) * 64                             # tune, 詞, 8 clauses
  assert img.size == (2 * sheet_w, 64 * 2 + 7 * 64)           # the longest clause: 7 characters
  ink = _ink_columns(Image.fromarray(np.asarray(img)[:, -sheet_w:]))
  assert len(ink) == 10 and ink[1] > 0.002, ink               # 詞: one small character
  assert all(x > 0.01 for x in ink[:1] + ink[2:]), ink         # the tune, then the clauses
  with helpers.served_export(wd, tmp_path / "exp", "ci", 2) as client:
    resp = client.post("/v1/poems", json={"form": "ci", "tune": "菩萨蛮", "strict": True, "num": 2,
                                          "seed": 3, "format": "png"})
  assert resp.status_code == 200 and resp.content == png.read_bytes()
