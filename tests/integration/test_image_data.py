"""Colour picture datasets: a user's folder (or .zip) of mixed pictures, and the emoji
dataset's pure parts (its download-and-prepare test is in tests/slow)."""

import os
import zipfile

import ml_collections
import numpy as np
import pytest
from PIL import Image

from artjax import ConfigError
from artjax.image import data
from artjax.image.data import emoji as emoji_builder
from artjax.image.data import emoji_data
from artjax.image.data.folder import folder_builder


def folder_config(path, tmp_path, **kw):
  c = ml_collections.ConfigDict({
      "name": f"folder:{path}", "data_dir": str(tmp_path / "data"), "classes": (), "shots": 0,
      "resolution": 16, "alpha": False, "fit": "crop", "labels": False, "mirror": False,
      "strict": False, "max_pixels": 89_478_485})
  c.update(kw)
  return c


def make_folder(root, n_per_class=6):
  """Two subfolders of pictures in five formats and odd sizes, one truncated PNG and one
  text file posing as a JPEG."""
  rng = np.random.default_rng(0)
  formats = ("png", "jpg", "webp", "bmp", "gif")
  for c, (name, colour) in enumerate((("cats", (220, 40, 40)), ("dogs", (40, 40, 220)))):
    os.makedirs(root / name / "deeper", exist_ok=True)
    for i in range(n_per_class):
      w, h = 20 + 7 * i, 30 + 3 * i
      im = np.full((h, w, 3), colour, np.uint8) + rng.integers(0, 20, (h, w, 3), dtype=np.uint8)
      sub = root / name / ("deeper" if i % 2 else "")
      Image.fromarray(im).save(sub / f"{name}{i}.{formats[i % len(formats)]}")
  good = root / "cats" / "cats0.png"
  (root / "cats" / "broken.png").write_bytes(good.read_bytes()[:60])
  (root / "dogs" / "notes.jpg").write_text("not a picture")
  return 2 * n_per_class


def test_folder_prepares_once_skips_bad_files_and_labels_by_subfolder(tmp_path, capsys):
  n = make_folder(tmp_path / "pics")
  c = folder_config(tmp_path / "pics", tmp_path, labels=True)
  assert data.image_shape(c) == (16, 16, 3) and data.num_classes(c) == 2
  ds = data.load(c)
  err = capsys.readouterr().err
  assert "skipping 2 unreadable picture(s)" in err and "broken.png" in err and "notes.jpg" in err
  total = sum(len(ds.labels(k)) for k in ("train", "validation", "test"))
  assert total == n and ds.class_names == ("cats", "dogs")
  for k in ("train", "validation", "test"):
    ims, lbs = ds.splits[k]
    assert ims.shape[1:] == (16, 16, 3) and ims.dtype == np.uint8
    red = ims[..., 0].mean((1, 2)) > ims[..., 2].mean((1, 2))   # cats are red, dogs blue
    np.testing.assert_array_equal(red, lbs == 0)
  prepared = sorted(os.listdir(tmp_path / "data" / "folder"))
  data.load(folder_config(tmp_path / "pics", tmp_path, labels=True))   # unchanged: reused
  assert sorted(os.listdir(tmp_path / "data" / "folder")) == prepared
  Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(tmp_path / "pics" / "cats" / "new.png")
  again = data.load(folder_config(tmp_path / "pics", tmp_path, labels=True))
  assert len(os.listdir(tmp_path / "data" / "folder")) == len(prepared) + 1   # re-prepared
  assert sum(len(again.labels(k)) for k in again.splits) == n + 1


def test_folder_fit_mirror_and_zip(tmp_path):
  make_folder(tmp_path / "pics")
  crop = data.load(folder_config(tmp_path / "pics", tmp_path))
  pad = data.load(folder_config(tmp_path / "pics", tmp_path, fit="pad"))
  assert (pad.images("train") == 255).all(-1).mean() > 0.05   # white bars of the padding
  assert (crop.images("train") == 255).all(-1).mean() == 0.0
  mirrored = data.load(folder_config(tmp_path / "pics", tmp_path, mirror=True))
  n = len(crop.images("train"))
  np.testing.assert_array_equal(mirrored.images("train")[n:], crop.images("train")[:, :, ::-1])
  with zipfile.ZipFile(tmp_path / "pics.zip", "w") as z:
    for d, _, files in os.walk(tmp_path / "pics"):
      for f in files:
        p = os.path.join(d, f)
        z.write(p, os.path.relpath(p, tmp_path / "pics"))
  zipped = data.load(folder_config(tmp_path / "pics.zip", tmp_path))
  for k in crop.splits:
    np.testing.assert_array_equal(zipped.images(k), crop.images(k))


@pytest.mark.parametrize("kw, match", [
    ({"resolution": 24}, "power of two"),
    ({"fit": "stretch"}, "data.fit"),
    ({"strict": True}, "2 unreadable picture"),
    ({"max_pixels": 500}, "above data.max_pixels"),
])
def test_folder_refusals_are_one_error_and_write_nothing(tmp_path, kw, match):
  make_folder(tmp_path / "pics")
  with pytest.raises(ConfigError, match=match):
    data.load(folder_config(tmp_path / "pics", tmp_path, **kw))
  assert not os.path.exists(tmp_path / "data" / "folder")


def test_fifos_devices_and_undecodable_names_are_skipped_not_hung(tmp_path, capsys):
  """Issue #47: a FIFO named x.png hung the scan forever, a link to /dev/zero was read, a file
  name that is not UTF-8 was a traceback in the split hash."""
  n = make_folder(tmp_path / "pics")
  root = tmp_path / "pics"
  os.mkfifo(root / "cats" / "x.png")
  os.symlink("/dev/zero", root / "dogs" / "zero.png")
  good = (root / "cats" / "cats0.png").read_bytes()
  with open(os.path.join(os.fsencode(root / "dogs"), b"caf\xe9.png"), "wb") as f:
    f.write(good)                                           # a Latin-1 name: not UTF-8
  ds = data.load(folder_config(root, tmp_path))
  err = capsys.readouterr().err
  assert "skipping 4 unreadable picture(s)" in err and "x.png" in err
  assert sum(len(ds.labels(k)) for k in ("train", "validation", "test")) == n + 1


def test_a_zip_bomb_is_refused_before_it_is_decompressed(tmp_path):
  """Issue #47: a small zip whose entry decompresses far past any picture of data.max_pixels
  is one error, read at most to the bound (not decompressed whole)."""
  make_folder(tmp_path / "pics")
  bomb = tmp_path / "bomb.zip"
  with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
    z.write(tmp_path / "pics" / "cats" / "cats0.png", "cats0.png")
    z.writestr("bomb.png", b"\0" * (64 << 20))              # 64 MiB of zeros, ~64 KB zipped
  assert bomb.stat().st_size < 1 << 20
  limit = folder_builder.max_file_bytes(1000)               # 16 MiB + 4 KB
  with pytest.raises(ConfigError, match="bomb.png decompresses to .* above data.max_pixels"):
    data.load(folder_config(bomb, tmp_path, max_pixels=1000))
  with pytest.raises(folder_builder.TooLarge):
    folder_builder.open_bytes(str(bomb), "bomb.png", limit)
  assert not os.path.exists(tmp_path / "data" / "folder")


def test_empty_or_missing_folder(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(ConfigError, match="no readable pictures"):
    data.load(folder_config(tmp_path / "empty", tmp_path))
  with pytest.raises(ConfigError, match="no such folder"):
    data.image_shape(folder_config(tmp_path / "nope", tmp_path))


def test_emoji_split_categories_and_compositing():
  # the documented split: sha256(key) % 10 == 0 is test (pairs share the key)
  keys = [f"{i:05x}.png" for i in range(2000)]
  test = [k for k in keys if emoji_builder.split_of(k) == "test"]
  assert 150 < len(test) < 250 and test[:3] == ["00012.png", "00017.png", "00018.png"]
  assert emoji_builder.split_of("1f600.png") == "train"      # pinned: the split never moves
  cats = emoji_builder.categories_of([
      {"image": "a.png", "category": "Smileys & Emotion",
       "skin_variations": {"1F3FB": {"image": "a-1f3fb.png"}}},
      {"image": "c.png", "category": "Component"}])
  assert cats == {"a.png": "Smileys & Emotion", "a-1f3fb.png": "Smileys & Emotion"}
  rgba = np.zeros((1, 2, 2, 4), np.uint8)
  rgba[0, 0, 0] = (255, 0, 0, 255)      # opaque red
  rgba[0, 0, 1] = (0, 0, 0, 128)        # half-transparent black
  rgb = emoji_data.on_white(rgba)
  assert rgb[0, 0, 0].tolist() == [255, 0, 0] and rgb[0, 1, 1].tolist() == [255, 255, 255]
  assert rgb[0, 0, 1].tolist() == [127, 127, 127]
  assert folder_builder.split_of("x/y.png") in ("train", "validation", "test")
