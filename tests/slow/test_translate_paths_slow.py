"""Paired translation (pix2pix) on the emoji dataset's real code path, fed by two small npm
package folders the test draws itself (the real packages need the npm registry: their
test is in tests/slow): pairs by file name, learning the style change, `run.py eval`'s
table, `run.py translate` and every bad input."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from helpers import run_cli
from artjax.image.data import emoji as emoji_builder
from artjax.image.data import emoji_data
from artjax.tasks import open_run

SUBJECTS = 200


def draw(i: int, style: str) -> np.ndarray:
  """Subject i: a coloured disk or square on transparent; "twitter" draws the same shape with
  its colour channels rotated and a black border (a style change a translator must learn)."""
  rng = np.random.default_rng(i)
  colour = rng.integers(40, 220, 3)
  cy, cx, r = rng.integers(22, 42), rng.integers(22, 42), rng.integers(12, 20)
  yy, xx = np.mgrid[:64, :64]
  dist = np.hypot(yy - cy, xx - cx) if i % 2 else np.maximum(abs(yy - cy), abs(xx - cx))
  inside = dist <= r
  rgba = np.zeros((64, 64, 4), np.uint8)
  if style == "google":
    rgba[inside, :3] = colour
  else:
    rgba[inside, :3] = colour[[1, 2, 0]]
    rgba[inside & (dist > r - 5), :3] = 0
  rgba[inside, 3] = 255
  return rgba


def write_packages(data_dir):
  entries = [{"image": f"{0x1f300 + i:x}.png", "category": emoji_builder.CATEGORIES[i % 9]}
             for i in range(SUBJECTS)]
  entries.append({"image": "1f3fb.png", "category": "Component"})     # dropped, as upstream
  for style in emoji_builder.STYLES:
    pkg = os.path.join(data_dir, "downloads", f"emoji-datasource-{style}-{emoji_builder.VERSION}",
                       "package")
    os.makedirs(os.path.join(pkg, "img", style, "64"))
    with open(os.path.join(pkg, "emoji.json"), "w") as f:
      json.dump(entries, f)
    for i, e in enumerate(entries):
      Image.fromarray(draw(i, style), "RGBA").save(os.path.join(pkg, "img", style, "64", e["image"]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  root = tmp_path_factory.mktemp("translate")
  data_dir = str(root / "data")
  write_packages(data_dir)
  wd = str(root / "run")
  r = run_cli("train", "--config=configs/translate.py:smoke", f"--workdir={wd}",
              f"--config.data.data_dir={data_dir}", "--config.train.steps=300",
              "--config.train.batch_size=16", "--config.train.steps_per_dispatch=100",
              "--config.train.eval_every=100", "--config.train.log_every=100",
              "--config.optim.lr=2e-3",
              "--config.evaluator.train.steps=300")
  assert r.returncode == 0, r.stderr[-2000:]
  return root, data_dir, wd


def test_pairs_share_subject_and_split(trained):
  _, data_dir, _ = trained
  ds = emoji_data.load("emoji", data_dir, 16, False)
  seen = {}
  for split in ("train", "validation", "test"):
    src, dst, keys, cats = emoji_data.pairs(ds, split, "google", "twitter")
    assert len(src) == len(dst) == len(keys) > 0 and list(keys) == sorted(keys)
    for k in keys:
      assert k not in seen, f"{k} is in {seen.get(k)} and {split}"
      seen[k] = split
      assert emoji_builder.split_of(k) == ("test" if split == "test" else "train")
    i = int(keys[0][:-4], 16) - 0x1f300
    assert cats[0] == i % 9
    want = emoji_data.resize(np.stack([draw(i, "google"), draw(i, "twitter")]), 16)
    assert np.array_equal(src[0], emoji_data.on_white(want[:1])[0])
    assert np.array_equal(dst[0], emoji_data.on_white(want[1:])[0])
  assert len(seen) == SUBJECTS      # the Component image is dropped, every subject paired
  style = emoji_data.load("emoji:style", data_dir, 16, False)
  assert style.num_classes == 2 and set(style.labels("train")) == {0, 1}


def test_translation_learns_the_style_and_eval_reports_it(trained):
  _, _, wd = trained
  r = run_cli("eval", f"--workdir={wd}")
  assert r.returncode == 0, r.stderr[-2000:]
  with open(os.path.join(wd, "eval.json")) as f:
    m = json.load(f)["methods"]
  ident, hist, tr = (m[k] for k in ("source picture (identity)", "colour histogram matched",
                                    "translation"))
  assert tr["l1"] < 0.65 * ident["l1"] and tr["l1"] < hist["l1"], m   # measured: 0.42x
  assert tr["ssim"] > ident["ssim"] and tr["ssim"] > hist["ssim"], m
  assert m["true target drawing"]["l1"] == 0.0 and m["true target drawing"]["ssim"] == 1.0
  assert os.path.exists(os.path.join(wd, "eval_strip.png")) and "| translation |" in r.stdout


def test_translate_command_keeps_order_and_resizes_with_a_note(trained):
  root, data_dir, wd = trained
  ds = emoji_data.load("emoji", data_dir, 16, False)
  src, dst, _, _ = emoji_data.pairs(ds, "test", "google", "twitter")
  big = emoji_data.on_white(np.stack([draw(int(k[:-4], 16) - 0x1f300, "google") for k in
                                      emoji_data.pairs(ds, "test", "google", "twitter")[2]]))
  np.savez(root / "in.npz", images=src)
  np.savez(root / "big.npz", images=big)
  out, out_big = str(root / "out.npz"), str(root / "out_big.npz")
  r = run_cli("translate", f"--workdir={wd}", f"--images={root / 'in.npz'}", f"--out={out}",
              f"--grid={root / 'g.png'}")
  assert r.returncode == 0, r.stderr
  y = np.load(out)["images"]
  task, state = open_run(wd)
  import jax
  want = np.asarray(jax.jit(task.translate)(state, src)["images"])
  assert y.dtype == np.uint8 and y.shape == src.shape and np.array_equal(y, want)
  assert os.path.exists(root / "g.png")
  r = run_cli("translate", f"--workdir={wd}", f"--images={root / 'big.npz'}", f"--out={out_big}")
  assert r.returncode == 0 and "note: resizing" in r.stdout and "64x64x3" in r.stdout, r.stdout
  yb = np.load(out_big)["images"]
  assert yb.shape == y.shape and np.abs(yb.astype(int) - y).mean() < 8   # same subjects, same order
  folder = root / "pngs"
  folder.mkdir()
  for i, im in enumerate(src[:3]):
    Image.fromarray(im).save(folder / f"{i:02d}.png")
  r = run_cli("translate", f"--workdir={wd}", f"--images={folder}", f"--out={root / 'f.npz'}")
  assert r.returncode == 0 and np.array_equal(np.load(root / "f.npz")["images"], want[:3])


def test_translate_refuses_bad_input_with_one_line_and_writes_nothing(trained, trained_workdir):
  root, _, wd = trained
  bad = root / "bad"
  bad.mkdir()
  np.savez(bad / "nan.npz", images=np.full((2, 16, 16, 3), np.nan, np.float32))
  np.savez(bad / "empty.npz", images=np.zeros((0, 16, 16, 3), np.uint8))
  np.savez(bad / "flat.npz", images=np.zeros((2, 16, 16), np.uint8))
  np.savez(bad / "other.npz", pictures=np.zeros((2, 16, 16, 3), np.uint8))
  (bad / "junk.npz").write_bytes(b"not a zip")
  (bad / "nopics").mkdir()
  ok = root / "ok.npz"
  np.savez(ok, images=np.zeros((2, 16, 16, 3), np.uint8))
  out = bad / "out.npz"
  cases = {
      (f"--workdir={wd}", f"--images={bad / 'nan.npz'}"): "NaN",
      (f"--workdir={wd}", f"--images={bad / 'empty.npz'}"): "no images",
      (f"--workdir={wd}", f"--images={bad / 'flat.npz'}"): "[N, H, W, C]",
      (f"--workdir={wd}", f"--images={bad / 'other.npz'}"): "no 'images'",
      (f"--workdir={wd}", f"--images={bad / 'junk.npz'}"): "not a readable .npz",
      (f"--workdir={wd}", f"--images={bad / 'nopics'}"): "no pictures",
      (f"--workdir={wd}", f"--images={bad / 'missing.npz'}"): "does not exist",
      (f"--workdir={trained_workdir}", f"--images={ok}"): "translation run",
      (f"--workdir={bad / 'norun'}", f"--images={ok}"): "norun",
  }
  for args, words in cases.items():
    r = run_cli("translate", *args, f"--out={out}")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), (args, r.stderr)
    assert words in lines[0], (words, lines[0])
  r = run_cli("translate", f"--workdir={wd}", f"--images={ok}", "--out=o.png")
  assert r.returncode != 0 and ".npz" in r.stderr
  assert sorted(os.listdir(bad)) == ["empty.npz", "flat.npz", "junk.npz", "nan.npz", "nopics",
                                     "other.npz"]


def write_paired_folder(root, n=120):
  """root/A/NAME and root/B/NAME: the same subject in the two test styles, some in a nested
  folder, one picture without its pair, one JPEG."""
  for side, style in (("A", "google"), ("B", "twitter")):
    for i in range(n):
      sub = root / side / ("more" if i % 10 == 3 else "")
      sub.mkdir(parents=True, exist_ok=True)
      im = Image.fromarray(draw(i, style), "RGBA")
      if i == 5:
        im.convert("RGB").save(sub / f"s{i:03d}.jpg", quality=95)
      else:
        im.save(sub / f"s{i:03d}.png")
  Image.fromarray(draw(999, "google"), "RGBA").save(root / "A" / "lonely.png")


def test_translation_trains_on_a_users_paired_folder(tmp_path):
  from artjax.image.data import folder_data
  from artjax.image.data.folder import folder_builder
  from artjax.tasks import datasets as data_lib
  from configs.translate import get_config
  pairs = tmp_path / "pairs"
  write_paired_folder(pairs)
  data_dir, wd = str(tmp_path / "data"), str(tmp_path / "run")
  base = (f"--config.data.name=folder:{pairs}", f"--config.data.data_dir={data_dir}")
  r = run_cli("train", "--config=configs/translate.py:folder,smoke", f"--workdir={wd}", *base,
              "--config.train.steps=200", "--config.train.batch_size=16",
              "--config.train.steps_per_dispatch=100", "--config.train.eval_every=100",
              "--config.train.log_every=100", "--config.optim.lr=2e-3",
              "--config.evaluator.train.steps=200")
  assert r.returncode == 0, r.stderr[-2000:]
  c = get_config("folder,smoke")
  c.data.update(name=f"folder:{pairs}", data_dir=data_dir)
  ds = data_lib.load(c.data)
  seen = set()
  for split in ("train", "validation", "test"):
    src, dst, names, _ = folder_data.pairs(ds, split, "A", "B")
    assert len(src) == len(dst) == len(names) > 0 and list(names) == sorted(names)
    for name in names:   # a pair never straddles splits; every subject once
      assert folder_builder.split_of(f"A/{name}", "name") == split and name not in seen
      seen.add(name)
  assert len(seen) == 120 and "lonely.png" not in seen and "more/s003.png" in seen
  r = run_cli("eval", f"--workdir={wd}")
  assert r.returncode == 0, r.stderr[-2000:]
  with open(os.path.join(wd, "eval.json")) as f:
    m = json.load(f)["methods"]
  ident, tr = m["source picture (identity)"], m["translation"]
  assert tr["l1"] < 0.8 * ident["l1"] and tr["ssim"] > ident["ssim"], m
  assert tr["style_prob"] > ident["style_prob"] and "category_kept" not in tr, m
  assert "| translation |" in r.stdout and "P(B)" in r.stdout


def test_translation_refuses_a_folder_that_is_not_paired(tmp_path):
  pairs = tmp_path / "pairs"
  write_paired_folder(pairs, n=12)
  (tmp_path / "flat").mkdir()
  Image.fromarray(draw(0, "google"), "RGBA").save(tmp_path / "flat" / "x.png")
  data_dir = f"--config.data.data_dir={tmp_path / 'data'}"
  cases = {
      (f"--config.data.name=folder:{pairs}", "--config.data.split_by=path"): "split_by=name",
      (f"--config.data.name=folder:{pairs}", "--config.translate.target=C"): "choose one of ('A', 'B')",
      (f"--config.data.name=folder:{pairs}", "--config.data.split_by=size"): "data.split_by",
      (f"--config.data.name=folder:{tmp_path / 'flat'}",): "found subfolders ()",
  }
  for args, words in cases.items():
    wd = tmp_path / "run"
    r = run_cli("train", "--config=configs/translate.py:folder,smoke", f"--workdir={wd}",
                data_dir, *args)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), (args, r.stderr)
    assert words in lines[0], (words, lines[0])
    assert not wd.exists()
