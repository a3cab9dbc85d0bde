"""benchmarks/ is a package: every benchmark and PyTorch peer imports as benchmarks.NAME
(no sys.path edits), and each benchmark has a main guard and a --help."""

import importlib
import os
import pkgutil

import pytest

import benchmarks
from benchmarks import peers

NAMES = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.ispkg)


def test_benchmarks_are_modules_of_the_package():
  assert {"common", "throughput", "music_throughput", "style", "repair"} <= set(NAMES)
  for name in NAMES:
    src = open(os.path.join(benchmarks.__path__[0], f"{name}.py"), encoding="utf-8").read()
    assert "sys.path" not in src, f"benchmarks/{name}.py edits sys.path"
    if name != "common":
      assert 'if __name__ == "__main__":' in src, name


@pytest.mark.parametrize("name", [n for n in NAMES if n != "common"])
def test_each_benchmark_imports(name):
  mod = importlib.import_module(f"benchmarks.{name}")
  assert callable(getattr(mod, "main", None)), name


def test_peers_live_in_their_own_package():
  names = {m.name for m in pkgutil.iter_modules(peers.__path__)}
  assert {"torch_peer", "torch_music_peer", "torch_recipe", "torch_style_peer"} <= names
  assert not [n for n in NAMES if n.startswith("torch_")]
