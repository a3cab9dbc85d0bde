import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory):
  """A private TFDS data dir for the whole session (digits prepared once)."""
  d = os.environ.get("ARTJAX_TEST_DATA_DIR") or str(tmp_path_factory.mktemp("tfds"))
  os.environ["ARTJAX_DATA_DIR"] = d
  from artjax import data
  data.load_images("digits", d)   # prepared once, before any subprocess reads it
  return d


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory, data_dir):
  """A small conditional GAN trained briefly on digits, shared by sampling tests."""
  from helpers import small_config
  from artjax.train import train
  wd = str(tmp_path_factory.mktemp("trained"))
  train(small_config(steps=200), wd, quiet=True)
  return wd


@pytest.fixture(scope="session")
def chorales(data_dir):
  """Bach chorales prepared once per session (about 20 s on 2 cores)."""
  from artjax import data
  return data.load_chorales(data_dir)


@pytest.fixture(scope="session")
def music_workdir(tmp_path_factory, chorales):
  """A tiny mode-conditional Music Transformer trained briefly on the chorales."""
  from helpers import music_config
  from artjax.train import train
  wd = str(tmp_path_factory.mktemp("music"))
  train(music_config(steps=40), wd, quiet=True)
  return wd
