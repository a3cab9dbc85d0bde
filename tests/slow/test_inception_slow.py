"""The Flax Inception-v3 port against its PyTorch twin (tests/torch_inception.py, written as
pytorch-fid writes the FID network): identical random weights saved by torch.save and read by
artjax's loader (without torch) give the same pool features and logits."""

import os
import pickle
import sys
import zipfile

import jax
import numpy as np
import pytest

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch", reason="the twin test needs torch (make test-slow installs it)")
sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
import torch_inception  # noqa: E402

from artjax import ConfigError  # noqa: E402
from artjax.image import inception_weights  # noqa: E402
from artjax.image.models import inception  # noqa: E402


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
  net = torch_inception.randomised(seed=3)
  path = str(tmp_path_factory.mktemp("inception") / "fid_inception.pth")
  torch.save(net.state_dict(), path)
  return net, path


def test_port_matches_pytorch_twin(twin):
  net, path = twin
  rng = np.random.RandomState(0)
  # 32 px (upsampled) and 320 px (downsampled without antialiasing), as FID callers feed it.
  for size in (32, 320):
    x = rng.rand(2, size, size, 3).astype(np.float32)
    with torch.no_grad():
      f_t, l_t = net(torch.from_numpy(x).permute(0, 3, 1, 2))
    params = inception_weights.load(path)
    f_j, l_j = jax.jit(inception.apply, static_argnums=2)(params, x, True)
    assert np.asarray(f_j).shape == (2, 2048)
    np.testing.assert_allclose(np.asarray(f_j), f_t.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(l_j), l_t.numpy(), atol=1e-4, rtol=0)
    assert float(f_t.abs().mean()) > 1e-3  # the comparison is not between zeros


def test_loader_maps_every_tensor(twin):
  net, path = twin
  state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
  arrays = inception_weights.read_state_dict(path)
  assert set(state) <= set(arrays)
  for k, v in state.items():
    np.testing.assert_array_equal(arrays[k], v.numpy())
  params = inception_weights.convert(arrays)
  assert set(params) == set(inception.SPECS) | {"fc"}


def test_loader_refuses_a_pickle_that_runs_code(twin, tmp_path):
  _, path = twin
  bad = str(tmp_path / "evil.pth")
  with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
    for n in src.namelist():
      data = src.read(n)
      if n.endswith("data.pkl"):
        data = pickle.dumps(__import__("os").system)
      dst.writestr(n, data)
  with pytest.raises(ConfigError, match="not a readable state dict"):
    inception_weights.load(bad)
