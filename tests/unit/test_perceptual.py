"""artjax.image.perceptual: the LPIPS-style distance in EfficientNet-Lite0's stages, and GAN
inversion (artjax.image.inversion) using it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
import skimage.transform

from artjax.image import inversion, perceptual, pretrained


def _photo(name, size=64):
  x = skimage.transform.resize(getattr(skimage.data, name)(), (size, size), anti_aliasing=True)
  return jnp.asarray(x * 2.0 - 1.0, jnp.float32)[None]


_F = perceptual.features("lite0", 64)
_D = jax.jit(lambda a, b: jnp.mean((_F(a) - _F(b)) ** 2, -1)[0])


def _distance(a, b):
  return float(_D(a, b))


def test_the_distance_is_the_mean_over_stages_of_unit_vector_distances():
  a, b = _photo("chelsea"), _photo("coffee")
  net = pretrained.load("lite0", features_only=True)
  stages = jax.jit(lambda x: net.stages((x + 1.0) * 127.5, last_stage=5, which=perceptual.STAGES))
  maps = [stages(x) for x in (a, b)]
  want = np.mean([np.mean(np.sum((np.asarray(u / jnp.linalg.norm(u, axis=-1, keepdims=True))
                                  - np.asarray(v / jnp.linalg.norm(v, axis=-1, keepdims=True))) ** 2, -1))
                  for u, v in zip(*maps)])
  # float32 sums of ~5k terms of order 1: agreement to 1e-4 relative
  assert abs(_distance(a, b) - want) <= 1e-4 * want
  assert _distance(a, a) == 0.0 and 0.0 < want < 4.0


def test_a_photo_is_nearer_to_itself_slightly_changed_than_to_another_photo():
  cat, coffee = _photo("chelsea"), _photo("coffee")
  shifted = jnp.roll(cat, 1, axis=2)
  darker = cat * 0.9 - 0.05
  other = _distance(cat, coffee)
  assert _distance(cat, shifted) < other / 4 and _distance(cat, darker) < other / 4
  grey = jnp.mean(cat, -1, keepdims=True)               # one channel: repeated to RGB
  assert _distance(grey, grey) == 0.0 and _distance(grey, jnp.mean(coffee, -1, keepdims=True)) > 0


def _toy_generator():
  """z [M, 4] -> 16 x 16 colour pictures: smooth colour fields whose layout the latent sets."""
  yy, xx = jnp.meshgrid(jnp.linspace(-1, 1, 16), jnp.linspace(-1, 1, 16), indexing="ij")
  basis = jnp.stack([xx, yy, xx * yy, xx * xx - yy * yy], -1)             # [16, 16, 4]
  mix = jax.random.normal(jax.random.key(3), (4, 3)) * 0.6

  def generate(z, labels=None):
    return jnp.tanh(jnp.einsum("hwk,nk,kc->nhwc", basis, z, mix))
  return generate


@pytest.mark.slow   # 5-6 s (Lite0's gradient inside the inversion scan): make test-slow
def test_inversion_uses_the_perceptual_term_and_still_matches_the_visible_pixels():
  generate = _toy_generator()
  truth = generate(jax.random.normal(jax.random.key(7), (2, 4)))
  visible = jnp.ones((2, 16, 16, 1)).at[:, 8:].set(0.0)
  base = inversion.Settings(restarts=2, screen=64, steps=60, realism=0.0, blend_iters=0)

  def run(s):
    return jax.jit(lambda t: inversion.invert(generate, lambda x, y: jnp.zeros(len(x)), t, visible,
                                              0, 4, s, jax.random.key(1)))(truth)
  pixels, _, rec_pixels = run(base)
  with_lite, _, rec_lite = run(inversion.Settings(**{**base.__dict__, "perceptual": 1.0}))
  assert float(jnp.max(jnp.abs(with_lite - pixels))) > 1e-3          # the term changes the fit
  assert float(jnp.max(rec_lite)) < 0.02 and float(jnp.max(rec_pixels)) < 0.02
