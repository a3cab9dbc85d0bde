"""The pretrained EfficientNet-Lite0 (artjax.image.pretrained): read from its package without
torch and without running code, and it knows ImageNet (photos get their classes)."""

import os
import pickle
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from artjax import ConfigError
from artjax.image import pretrained
from artjax.nn import torch_state

# ImageNet-1k indices: 281 tabby, 282 tiger cat, 285 Egyptian cat; 967 espresso
EXPECTED = {"chelsea": {281, 282, 285}, "coffee": {967}}


def _photo(name, size=224):
  from skimage import data
  im = Image.fromarray(getattr(data, name)()).convert("RGB").resize((size, size), Image.BILINEAR)
  return np.asarray(im, np.float32)


def test_lite0_classifies_photos_and_has_the_stage_features():
  net = pretrained.load("lite0")
  x = np.stack([_photo(n) for n in EXPECTED])
  pooled, logits = jax.jit(lambda a: net(a))(x)
  assert pooled.shape == (2, 1280)
  for name, row in zip(EXPECTED, np.asarray(logits)):
    assert int(np.argmax(row)) in EXPECTED[name], (name, np.argsort(-row)[:5])
  assert net.stage_channels == (24, 40, 112, 320)
  feats = jax.jit(lambda a: net.stages(a))(x[:, :64, :64])
  assert [f.shape for f in feats] == [(2, 16, 16, 24), (2, 8, 8, 40), (2, 4, 4, 112), (2, 2, 2, 320)]
  # style transfer's `--features=lite0`: the same stages of [0, 1] images (the stylisation:
  # tests/slow/test_style_lite0_slow.py); stages 1, 2, 3, 5 (strides 2-16), content at 16
  from artjax.image.models import features as fnet
  from artjax.image.networks import feature_network
  fn, params = feature_network("lite0", 0)
  assert (fn.style, fn.content, fn.max_level) == ((0, 1, 2, 3), (3,), 0)
  got = jax.jit(lambda p, a: fnet.apply(fn, p, a))(params, x[:, :64, :64] / 255.0)
  feats = jax.jit(lambda a: net.stages(a, 4, (0, 1, 2, 4)))(x[:, :64, :64])
  assert [f.shape[1:] for f in feats] == [(32, 32, 16), (16, 16, 24), (8, 8, 40), (4, 4, 112)]
  for g, w in zip(got, feats):
    # the same operations compiled as two programs (weights as arguments vs constants): float32
    # sums fused differently differ by a few ulps of the largest feature, growing with depth
    # (seen: 1e-6 of it here; 1e-4 leaves room for other vector widths and still fails on a
    # wrong stage or input scaling, which are off by O(1))
    w = np.asarray(w)
    np.testing.assert_allclose(np.asarray(g), w, rtol=0, atol=1e-4 * np.abs(w).max())
  assert fn.activation_values(64, 64) > sum(f[0].size for f in feats)


@pytest.mark.slow   # 4 s (a fresh interpreter): make test-slow
def test_reading_needs_no_torch():
  code = ("import sys; from artjax.image import pretrained; pretrained.load('lite0'); "
          "print('torch' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert out.stdout.strip() == "False"


class _Boom:
  def __reduce__(self):
    return (os.system, ("echo pwned > boom.txt",))


def test_a_pickle_with_code_is_refused_and_nothing_runs(tmp_path):
  bad = tmp_path / "bad.pth"
  with open(bad, "wb") as f:   # the legacy layout: magic, version, sys info, then the object
    for obj in (torch_state.LEGACY_MAGIC, 1001, {}):
      pickle.dump(obj, f, protocol=2)
    pickle.dump({"w": _Boom()}, f, protocol=2)
  cwd = os.getcwd()
  os.chdir(tmp_path)
  try:
    with pytest.raises(pickle.UnpicklingError, match="unexpected object"):
      torch_state.read(str(bad))
  finally:
    os.chdir(cwd)
  assert not (tmp_path / "boom.txt").exists()


def test_a_truncated_weights_file_is_one_error(tmp_path, monkeypatch):
  data = open(pretrained.package_file("lite0"), "rb").read()
  cut = tmp_path / "models"
  cut.mkdir()
  (cut / "x.pth").write_bytes(data[: len(data) // 2])
  monkeypatch.setattr(pretrained, "package_file", lambda name: str(cut / "x.pth"))
  pretrained.weights.cache_clear()
  try:
    with pytest.raises(ConfigError, match="not a readable EfficientNet-Lite"):
      pretrained.weights("lite0")
  finally:
    pretrained.weights.cache_clear()


def test_an_unknown_network_is_refused():
  with pytest.raises(ConfigError, match="unknown pretrained network"):
    pretrained.package_file("lite9")


