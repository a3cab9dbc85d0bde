"""Inception-v3 loader refusals and shapes (the PyTorch twin test is in tests/slow)."""

import numpy as np
import pytest

from artjax import ConfigError
from artjax.image import inception_weights
from artjax.image.models import inception


def _state():
  out = {}
  for name, (cin, cout, (kh, kw), _, _) in inception.SPECS.items():
    out[f"{name}.conv.weight"] = np.zeros((cout, cin, kh, kw), np.float32)
    for k in ("weight", "running_var"):
      out[f"{name}.bn.{k}"] = np.ones((cout,), np.float32)
    for k in ("bias", "running_mean"):
      out[f"{name}.bn.{k}"] = np.zeros((cout,), np.float32)
    out[f"{name}.bn.num_batches_tracked"] = np.zeros((), np.int64)
  out["fc.weight"] = np.zeros((1008, 2048), np.float32)
  out["fc.bias"] = np.zeros((1008,), np.float32)
  return out


def test_the_layer_table_is_inception_v3():
  # 94 BasicConv2d layers; the channel counts chain to 2048 pool features.
  assert len(inception.SPECS) == 94
  assert inception.SPECS["Mixed_7c.branch_pool"][0] == 2048
  assert sum(inception.SPECS[f"Mixed_7c.{b}"][1] for b in
             ("branch1x1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_3a",
              "branch3x3dbl_3b", "branch_pool")) == inception.FEATURES


def test_batchnorm_is_folded():
  s = _state()
  s["Conv2d_1a_3x3.bn.running_var"][:] = 3.0 - inception.BN_EPS
  s["Conv2d_1a_3x3.bn.running_mean"][:] = 2.0
  s["Conv2d_1a_3x3.bn.bias"][:] = 1.0
  p = inception_weights.convert(s)["Conv2d_1a_3x3"]
  np.testing.assert_allclose(p["scale"], 1 / np.sqrt(3.0), rtol=1e-6)
  np.testing.assert_allclose(p["shift"], 1.0 - 2.0 / np.sqrt(3.0), rtol=1e-6)
  assert p["kernel"].shape == (3, 3, 3, 32)


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.pop("Mixed_6b.branch7x7_2.conv.weight"), "has no Mixed_6b.branch7x7_2.conv.weight"),
    (lambda s: s.update({"AuxLogits.fc.weight": np.zeros(3)}), "does not: AuxLogits.fc.weight"),
    (lambda s: s.update({"fc.bias": np.zeros(1000)}), r"fc.bias .* shape \[1000\]"),
])
def test_loader_refusals(tmp_path, edit, match):
  s = _state()
  edit(s)
  path = str(tmp_path / "w.npz")
  np.savez(path, **s)
  with pytest.raises(ConfigError, match=match):
    inception_weights.load(path)


def test_missing_or_corrupt_file(tmp_path):
  with pytest.raises(ConfigError, match="does not exist"):
    inception_weights.load(str(tmp_path / "nope.pth"))
  bad = tmp_path / "bad.pth"
  bad.write_bytes(b"PK\x03\x04 not really a zip")
  with pytest.raises(ConfigError, match="--inception"):
    inception_weights.load(str(bad))
