import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
# tests/unit (pure functions), tests/integration (commands and runs), tests/slow (make
# test-slow: convergence, multi-process); helpers.py and the *_check.py scripts in tests/.
_SAVED_PATH, _SAVED_ENV = list(sys.path), dict(os.environ)
for d in (ROOT, TESTS, os.path.join(TESTS, "integration"), os.path.join(TESTS, "unit")):
  sys.path.insert(0, d)

# One data dir for every test run on this machine (prepared digits, the trained evaluator,
# parsed chorales are reused; each is keyed by its builder version or fingerprint) and a
# persistent JAX compilation cache; subprocesses inherit both through the environment.
CACHE = os.environ.get("ARTJAX_TEST_CACHE") or os.path.join(
    os.path.expanduser("~"), ".cache", "artjax", "tests")
os.environ.setdefault("ARTJAX_TEST_DATA_DIR", os.path.join(CACHE, "data"))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(CACHE, "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: long convergence / multi-process tests (make test-slow)")


def pytest_unconfigure(config):
  """Leave the process as it was found: environment and import path restored."""
  os.environ.clear()
  os.environ.update(_SAVED_ENV)
  sys.path[:] = _SAVED_PATH


def pytest_collection_modifyitems(config, items):
  """Everything under tests/slow is slow, marked or not."""
  slow_dir = os.path.join(TESTS, "slow") + os.sep
  for item in items:
    if str(item.fspath).startswith(slow_dir):
      item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def _data_dir_env():
  """Every test reads datasets from the shared data dir (nothing is prepared here)."""
  d = os.environ["ARTJAX_TEST_DATA_DIR"]
  os.makedirs(d, exist_ok=True)
  os.environ["ARTJAX_DATA_DIR"] = d
  return d


@pytest.fixture(scope="session")
def data_dir(_data_dir_env):
  """The shared TFDS data dir with what many tests read prepared once, before any subprocess
  reads it: digits, the digits evaluator, the chorales. Requested by the tests that use it
  (tests/integration and tests/slow: all of theirs, through their conftest.py); unit tests
  that need none of it start at once."""
  import fcntl
  d = _data_dir_env
  # Parallel workers (pytest -n) share the data dir: the first prepares what many tests
  # read (digits, the digits evaluator, the chorales) under one lock; the others wait.
  with open(os.path.join(d, ".prepare.lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    from artjax.image import data
    data.load_images("digits", d)
    from helpers import digits_evaluator
    digits_evaluator(d)
    from artjax.music import data as music_data
    music_data.load_chorales(d)
    fcntl.flock(lock, fcntl.LOCK_UN)
  return d


@pytest.fixture(scope="session")
def poetry_workdir(tmp_path_factory):
  """A smoke poetry model on a fake chinese-poetry checkout (served by the live tests)."""
  from helpers import poetry_run
  return poetry_run(tmp_path_factory.mktemp("poetry_session"))


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory, data_dir):
  """A small conditional GAN trained briefly on digits, shared by sampling tests."""
  from helpers import small_config
  from artjax.tasks.training import train
  wd = str(tmp_path_factory.mktemp("trained"))
  train(small_config(steps=200), wd, quiet=True)
  return wd


@pytest.fixture(scope="session")
def repair_workdir(tmp_path_factory, data_dir):
  """A tiny inpainting network (configs/repair.py:smoke, 20 steps): served by /v1/repair."""
  from configs.repair import get_config
  from artjax.tasks.training import train
  wd = str(tmp_path_factory.mktemp("served_repair") / "repair")
  c = get_config("smoke")
  c.train.update(steps=20, eval_every=20)
  assert train(c, wd, quiet=True)["status"] == "finished"
  return wd


@pytest.fixture(scope="session")
def eight_device_run(tmp_path_factory, data_dir):
  """The digits smoke run (40 steps, batch 64) on 8 forced CPU devices in one process
  (tests/multihost_check.py): trained once, the reference of the multi-device and the
  multi-host tests."""
  import subprocess
  wd = str(tmp_path_factory.mktemp("eight_devices") / "run")
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             ARTJAX_DATA_DIR=data_dir, JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "multihost_check.py"), wd,
                      "0", "0", "1"], env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  return wd


@pytest.fixture(scope="session")
def chorales(data_dir):
  """Bach chorales prepared once (about 20 s on 2 cores the first time, then cached)."""
  from artjax.music import data
  return data.load_chorales(data_dir)


@pytest.fixture(scope="session")
def music_workdir(tmp_path_factory, chorales):
  """A tiny mode-conditional Music Transformer trained briefly on the chorales."""
  from helpers import music_config
  from artjax.tasks.training import train
  wd = str(tmp_path_factory.mktemp("music"))
  train(music_config(steps=40), wd, quiet=True)
  return wd
