"""The projector (artjax.image.projection) on generators whose answer is known."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from artjax.image import projection


def _linear_generator(seed=0, w_dim=6, side=8):
  a = jax.random.normal(jax.random.key(seed), (w_dim, side * side * 3)) / np.sqrt(w_dim)

  def synth(w, noise):
    img = jnp.tanh(w @ a).reshape(w.shape[0], side, side, 3)
    return img + 0.01 * noise[0]
  return synth


def test_projection_finds_the_latent_of_a_generated_image():
  synth = _linear_generator()
  w_true = jax.random.normal(jax.random.key(1), (3, 6))
  noise0 = [jax.random.normal(jax.random.key(2), (3, 8, 8, 1))]
  targets = synth(w_true, [jnp.zeros((3, 8, 8, 1))])
  s = dataclasses.replace(projection.Settings(), steps=300, feature_weight=0.0, noise_reg=0.0)
  w, _, img, losses = jax.jit(lambda t: projection.project(
      synth, lambda x: x, t, jnp.zeros(6), 1.0, noise0, s, jax.random.key(3)))(targets)
  start = jnp.mean((synth(jnp.zeros((3, 6)), noise0) - targets) ** 2, (1, 2, 3))
  assert (losses["pixel"] < start / 100).all()
  np.testing.assert_allclose(np.asarray(w), np.asarray(w_true), atol=0.1)


def test_masked_projection_ignores_the_hidden_pixels():
  synth = _linear_generator()
  w_true = jax.random.normal(jax.random.key(1), (2, 6))
  targets = synth(w_true, [jnp.zeros((2, 8, 8, 1))])
  visible = jnp.ones((2, 8, 8, 1)).at[:, 2:6, 2:6].set(0.0)
  vandalised = jnp.where(visible > 0, targets, 1.0)   # hidden pixels painted white
  s = dataclasses.replace(projection.Settings(), steps=300, feature_weight=0.0,
                          optimize_noise=False)
  noise0 = [jnp.zeros((2, 8, 8, 1))]
  _, _, img, _ = projection.project(synth, lambda x: x, vandalised, jnp.zeros(6), 1.0, noise0,
                                    s, jax.random.key(0), visible)
  hole = visible[..., 0] == 0
  # the hole is filled from the generator's prior, close to the true image, not white
  assert float(jnp.abs(img - targets)[hole].mean()) < 0.1
  assert float(jnp.abs(img - vandalised)[hole].mean()) > 0.3


def test_noise_regularizer_penalises_structure_not_white_noise():
  white = jax.random.normal(jax.random.key(0), (1, 32, 32, 1))
  smooth = jnp.broadcast_to(jnp.linspace(-1, 1, 32)[None, :, None, None], (1, 32, 32, 1))
  assert float(projection.noise_regularizer([white])[0]) < 0.01
  assert float(projection.noise_regularizer([smooth])[0]) > 0.5


def test_learning_rate_ramps_up_and_down():
  s = projection.Settings(steps=100)
  lrs = [float(projection.learning_rate(s, t)) for t in (0, 2, 5, 50, 99)]
  assert lrs[0] == 0 and lrs[1] < lrs[2] and np.allclose(lrs[2:4], s.lr) and lrs[4] < 0.01 * s.lr


def test_walk_at_frame_indices_equals_the_whole_walk():
  from artjax.image import animation
  keys = jax.random.normal(jax.random.key(0), (4, 8))
  idx = jnp.asarray([0, 5, 17, 31])
  # The two calls are separate XLA programs: fusion and FMA contraction may differ by CPU, so the
  # tolerance follows the operation, not the machine: Catmull-Rom sums four keyframes with
  # weights up to 5, i.e. a rounding error of a few tens of float32 ulps of the largest keyframe
  # (a wrong frame index would be off by ~0.1-1).
  tol = 64 * float(np.finfo(np.float32).eps) * float(jnp.abs(keys).max())
  walk = jax.jit(animation.walk, static_argnums=(1, 2))     # eager: op by op, slower
  for interp in animation.INTERPOLATIONS:
    whole = walk(keys, 32, interp)
    np.testing.assert_allclose(walk(keys, 32, interp, idx), whole[idx], rtol=0, atol=tol)
    np.testing.assert_allclose(whole[0], keys[0], atol=tol)      # frame 0 is keyframe 0
    np.testing.assert_allclose(whole[8], keys[1], atol=tol)      # frame F/K is keyframe 1
  w = animation.class_path([1, 3], 5, 10)
  np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
  assert w[0].argmax() == 1 and w[5].argmax() == 3
