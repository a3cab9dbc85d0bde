import pytest
"""The GAN losses and the gradients of one step, checked against independent computations."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from artjax.tasks import build_task
from artjax.tasks.gan import d_loss_fn, g_loss_fn
from helpers import small_config


def test_losses_match_hand_computed_bce():
  real = jnp.array([2.0, -1.0, 0.5])
  fake = jnp.array([-3.0, 0.0])
  p_real = 1 / (1 + np.exp(-np.array([2.0, -1.0, 0.5])))
  p_fake = 1 / (1 + np.exp(-np.array([-3.0, 0.0])))
  want_d = -np.mean(np.log(p_real)) - np.mean(np.log(1 - p_fake))
  want_g = -np.mean(np.log(p_fake))
  np.testing.assert_allclose(d_loss_fn(real, fake), want_d, rtol=1e-6)
  np.testing.assert_allclose(g_loss_fn(fake), want_g, rtol=1e-6)
  # D(x)=0.5 everywhere: both losses are log 2 per term.
  np.testing.assert_allclose(d_loss_fn(jnp.zeros(4), jnp.zeros(4)), 2 * np.log(2), rtol=1e-6)


def _sgd_task(conditional, r1=0.0, policy=""):
  c = small_config()
  c.model.conditional = conditional
  c.gan.update(ema_decay=0.0, r1_gamma=r1, diffaugment=policy)
  c.optim.update(name="sgd", lr=1.0, b1=0.0, weight_decay=0.0)
  return build_task(c)


def _check_step(conditional, r1, policy=""):
  """With SGD(lr=1), the step's updates must be exactly minus the true gradients."""
  from artjax.augment import diff_augment
  task = _sgd_task(conditional, r1, policy)
  state = jax.jit(task.init_state, static_argnums=0)(0)
  rng = np.random.default_rng(0)
  data = {"train": {"images": jnp.asarray(rng.integers(0, 256, (50, 8, 8, 1)), jnp.uint8),
                    "labels": jnp.asarray(rng.integers(0, 10, (50,)), jnp.int32)},
          "train_size": jnp.int32(50)}
  new, _ = jax.jit(task.train_step)(state, data)

  # Independent reference: redraw the same batch and noise, differentiate the losses.
  from artjax.tasks.base import split_rng
  _, (k_idx, k_z, k_aug_d, k_aug_g) = split_rng(state["rng"], 5)
  k_real, k_fake = jax.random.split(k_aug_d)
  aug = lambda k, x: diff_augment(k, x, policy, task.pixel_range)
  idx = jax.random.randint(k_idx, (32,), 0, 50)
  real = aug(k_real, task._to_pixels(data["train"]["images"][idx]))
  labels = data["train"]["labels"][idx] if conditional else None
  z = jax.random.normal(k_z, (32, task.latent_dim))
  G = lambda gp: nnx.merge(task.g_def, gp)(z, labels)
  D = lambda dp, x: nnx.merge(task.d_def, dp)(x, labels)

  def d_total(dp):
    fake = aug(k_fake, jax.lax.stop_gradient(G(state["g"])))
    loss = (jnp.mean(-jnp.log(jax.nn.sigmoid(D(dp, real)))) +
            jnp.mean(-jnp.log(1 - jax.nn.sigmoid(D(dp, fake)))))
    if r1:
      gx = jax.grad(lambda x: jnp.sum(D(dp, x)))(real)
      loss = loss + 0.5 * r1 * jnp.mean(jnp.sum(gx ** 2, axis=(1, 2, 3)))
    return loss

  d_grad = jax.grad(d_total)(state["d"])
  d_want = jax.tree.map(lambda p, g: p - g, state["d"], d_grad)
  for a, b in zip(jax.tree.leaves(new["d"]), jax.tree.leaves(d_want)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)

  g_grad = jax.grad(lambda gp: jnp.mean(
      -jnp.log(jax.nn.sigmoid(D(d_want, aug(k_aug_g, G(gp)))))))(state["g"])
  g_want = jax.tree.map(lambda p, g: p - g, state["g"], g_grad)
  for a, b in zip(jax.tree.leaves(new["g"]), jax.tree.leaves(g_want)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
  assert int(new["step"]) == 1


def test_step_gradients_exact_unconditional():
  _check_step(False, 0.0)


def test_step_gradients_exact_conditional_r1():
  _check_step(True, 5.0)


@pytest.mark.slow   # about 6 s: runs in make test-slow (make test keeps under 5 minutes)
def test_step_gradients_exact_with_diffaugment():
  # The same augmentation policy on real and fake, in the D and the G update, and the
  # generator's gradient flows through the augmentation.
  _check_step(True, 0.0, "translation,cutout,color")


def test_ema_tracks_generator():
  c = small_config()
  c.gan.ema_decay = 0.9
  task = build_task(c)
  state = jax.jit(task.init_state, static_argnums=0)(0)
  data = {"train": {"images": jnp.zeros((10, 8, 8, 1), jnp.uint8),
                    "labels": jnp.zeros((10,), jnp.int32)}, "train_size": jnp.int32(10)}
  new, _ = jax.jit(task.train_step)(state, data)
  d0 = 1.0 / 10.0  # warm-up decay at step 0: min(0.9, 1/10)
  for e, g0, g1 in zip(jax.tree.leaves(new["ema"]), jax.tree.leaves(state["g"]),
                       jax.tree.leaves(new["g"])):
    np.testing.assert_allclose(e, d0 * g0 + (1 - d0) * g1, rtol=1e-5, atol=1e-7)
