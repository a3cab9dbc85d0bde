"""The long (make test-slow) tests of unit/test_models.py."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx
from artjax import ConfigError
from artjax.image.models import build_gan
from test_models import cfg  # noqa: F401


@pytest.mark.slow   # about 8 s: runs in make test-slow (make test keeps under 5 minutes)
def test_dcgan_adapters_start_at_identity_and_are_the_only_adapter_leaves():
  from artjax.engine import peft
  cfg = ml_collections.ConfigDict({"name": "dcgan", "latent_dim": 16, "width": 8,
                                   "conditional": True, "adapter_dim": 4})
  g, d = build_gan(cfg, (16, 16, 1), 10, jax.random.key(0))
  z = jax.random.normal(jax.random.key(1), (3, 16))
  labels = jnp.arange(3)
  x0, l0 = g(z, labels), d(jnp.zeros((3, 16, 16, 1)) + 0.1, labels)
  for net in (g, d):
    assert len(net.adapters) == 3
    for a in net.adapters:   # random down-projections change nothing while `up` is zero
      a.down.kernel[...] = jax.random.normal(jax.random.key(2), a.down.kernel.shape)
  np.testing.assert_array_equal(g(z, labels), x0)
  np.testing.assert_array_equal(d(jnp.zeros((3, 16, 16, 1)) + 0.1, labels), l0)
  for net in (g, d):
    for a in net.adapters:
      a.up.kernel[...] = 0.1 * jnp.ones(a.up.kernel.shape)
  assert np.abs(np.asarray(g(z, labels) - x0)).max() > 1e-3
  assert np.abs(np.asarray(d(jnp.zeros((3, 16, 16, 1)) + 0.1, labels) - l0)).max() > 1e-4
  params = nnx.to_pure_dict(nnx.state(g))
  mask = peft.trainable_mask(params, "adapter", g.layer_order)
  share = peft.count(params, mask) / peft.count(params)
  assert 0 < share < 0.2
