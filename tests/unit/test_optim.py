import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from artjax import ConfigError
from artjax.engine import optim


def ocfg(**kw):
  base = dict(name="adamw", lr=0.1, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.5,
              schedule="constant", warmup_steps=0, end_lr_frac=0.0, clip_norm=0.0, grad_accum=1)
  base.update(kw)
  return ml_collections.ConfigDict(base)


PARAMS = {"dense": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)},
          "embed": {"embedding": jnp.ones((4, 2))}, "norm": {"scale": jnp.ones(3)}}


def test_decay_mask_only_kernels_and_embeddings():
  m = optim.decay_mask(PARAMS)
  assert m == {"dense": {"kernel": True, "bias": False}, "embed": {"embedding": True},
               "norm": {"scale": False}}


def test_decoupled_decay_applies_to_kernels_only():
  tx = optim.make_optimizer(ocfg(), total_steps=10)
  zeros = jax.tree.map(jnp.zeros_like, PARAMS)
  updates, _ = tx.update(zeros, tx.init(PARAMS), PARAMS)
  # Zero gradient: the update is exactly -lr * wd * theta on decayed leaves, 0 elsewhere.
  np.testing.assert_allclose(updates["dense"]["kernel"], -0.1 * 0.5 * np.ones((2, 3)), rtol=1e-6)
  np.testing.assert_allclose(updates["embed"]["embedding"], -0.05 * np.ones((4, 2)), rtol=1e-6)
  assert not np.any(updates["dense"]["bias"]) and not np.any(updates["norm"]["scale"])


def test_warmup_cosine_schedule():
  sched = optim.learning_rate_schedule(ocfg(schedule="cosine", warmup_steps=10), total_steps=110)
  assert float(sched(0)) == 0.0
  np.testing.assert_allclose(sched(10), 0.1, rtol=1e-6)
  np.testing.assert_allclose(sched(60), 0.05, rtol=1e-4)
  assert float(sched(110)) < 1e-6


def test_clipping_and_accumulation():
  tx = optim.make_optimizer(ocfg(name="sgd", b1=0.0, lr=1.0, weight_decay=0.0, clip_norm=1.0,
                                 grad_accum=2), total_steps=10)
  p = {"kernel": jnp.zeros(4)}
  s = tx.init(p)
  g1 = {"kernel": jnp.array([3.0, 4.0, 0.0, 0.0])}
  g2 = {"kernel": jnp.array([0.0, 0.0, 0.0, 0.5])}
  u1, s = tx.update(g1, s, p)
  assert not np.any(u1["kernel"])                     # first micro-step: no update yet
  u2, s = tx.update(g2, s, p)
  # One update from the mean gradient (as one big batch), clipped to global norm 1.
  mean = np.array([1.5, 2.0, 0.0, 0.25])
  np.testing.assert_allclose(u2["kernel"], -mean / np.linalg.norm(mean), rtol=1e-5)


@pytest.mark.parametrize("bad,msg", [({"name": "lion"}, "unknown optim.name"),
                                     ({"lr": 0.0}, "lr must be > 0"),
                                     ({"grad_accum": 0}, "grad_accum"),
                                     ({"schedule": "step"}, "schedule")])
def test_bad_optimizer_config(bad, msg):
  with pytest.raises(ConfigError, match=msg):
    optim.validate(ocfg(**bad))
