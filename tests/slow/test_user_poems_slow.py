"""`text:PATH` on real poems a reader would bring: the 258 poems of Nalan Xingde (納蘭性德,
chinese-poetry, MIT, fetched with npm) written out as a UTF-8 text file, a blank line between
poems and a `# title` line each. Trained, evaluated against the n-gram baselines of the same
code, sampled."""

import glob
import json
import os
import re

import pytest

from helpers import run_cli


def _nalan_txt(tmp_path):
  from artjax.sources import npm
  from artjax.engine import data as data_lib
  cache = os.path.join(data_lib.default_data_dir(), "downloads", "chinese-poetry-nalan")
  if not glob.glob(os.path.join(cache, "**", "*.json"), recursive=True):
    npm.npm_pack("chinese-poetry", cache, lambda n: re.search(r"nalanxingde/.*\.json$", n),
                      "npm is needed to fetch chinese-poetry")
  src = glob.glob(os.path.join(cache, "**", "nalanxingde", "*.json"), recursive=True)[0]
  poems = json.load(open(src, encoding="utf-8"))
  out = tmp_path / "nalan.txt"
  out.write_text("\n".join(f"# {p['title']}\n" + "\n".join(p["para"]) + "\n" for p in poems),
                 encoding="utf-8")
  return out, len(poems)


@pytest.mark.slow
def test_a_poets_collection_as_a_text_file_trains_beats_unigram_and_samples(tmp_path):
  path, n = _nalan_txt(tmp_path)
  wd = tmp_path / "run"
  # a small model for 12k characters (a larger one, or 300 steps, starts to overfit)
  r = run_cli("train", "--config=configs/poetry.py:noplan", f"--workdir={wd}",
              f"--config.data.name=text:{path}", "--config.data.max_chars=96",
              "--config.train.steps=150", "--config.train.batch_size=32",
              "--config.model.d_model=64", "--config.model.num_layers=2", "--config.model.d_ff=256",
              "--config.model.num_heads=2", "--config.model.dropout=0.3",
              "--config.train.eval_every=0", "--config.optim.warmup_steps=30")
  assert r.returncode == 0, r.stderr[-2000:]
  r = run_cli("eval", f"--workdir={wd}", "--num=8")
  assert r.returncode == 0, r.stderr[-2000:]
  ev = json.load(open(wd / "eval.json", encoding="utf-8"))
  b = ev["bits_per_char"]
  # measured: model 8.52, unigram 8.96, Kneser-Ney 8.47 bits/char (258 poems are few for a
  # Transformer from scratch: it learns, and ties the n-gram model; docs/poetry.md)
  assert b["test_poems"] >= 5 and b["model"] < b["unigram"] - 0.3, b
  assert ev["free_verse"]["samples"]["n"] == 8
  r = run_cli("sample", f"--workdir={wd}", "--num=4", f"--out={tmp_path / 'p.txt'}")
  assert r.returncode == 0, r.stderr[-2000:]
  poems = (tmp_path / "p.txt").read_text(encoding="utf-8").strip().split("\n\n")
  assert len(poems) == 4 and all(len(p) >= 8 for p in poems)
