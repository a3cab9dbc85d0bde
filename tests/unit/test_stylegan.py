"""The StyleGAN2-class layers against their textbook definitions (small shapes, eager)."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from artjax import ConfigError
from artjax.image.models import stylegan


def model_cfg(**kw):
  d = dict(name="stylegan2", latent_dim=8, w_dim=8, mapping_layers=2, mapping_lr_mul=0.01,
           channel_base=64, channel_max=8, mbstd_group=2, conditional=True,
           adapter_dim=0)
  d.update(kw)
  return ml_collections.ConfigDict(d)


def small(num_classes=3, shape=(8, 8, 3), **kw):
  return stylegan.build(model_cfg(**kw), shape, num_classes, nnx.Rngs(0), nnx.Rngs(1))


def test_conv3x3_is_same_convolution():
  x = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))
  k = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))
  want = jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(stylegan.conv3x3(x, k), want, rtol=1e-5, atol=1e-5)


def test_modconv_equals_grouped_per_sample_convolution():
  """Input scaling + shared conv + output demodulation == StyleGAN2's per-sample weights
  w'_ijk = s_i w_ijk / sqrt(sum_ik (s_i w_ijk)^2)."""
  conv = stylegan.ModConv(3, 4, 8, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(2), (2, 5, 5, 3))
  w = jax.random.normal(jax.random.key(3), (2, 8))
  noise = jnp.zeros((2, 5, 5, 1))
  got = conv(x, w, noise)
  s = conv.affine(w)
  k = conv.kernel[...] * conv.gain
  outs = []
  for b in range(2):
    kb = k * s[b][None, None, :, None]
    kb = kb / jnp.sqrt(jnp.sum(kb ** 2, axis=(0, 1, 2), keepdims=True) + 1e-8)
    y = jax.lax.conv_general_dilated(x[b:b + 1], kb, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    outs.append(jax.nn.leaky_relu(y + conv.bias[...], 0.2) * math.sqrt(2))
  np.testing.assert_allclose(got, jnp.concatenate(outs), rtol=1e-4, atol=1e-5)


def test_demodulation_keeps_unit_variance():
  """Unit-variance input through a demodulated conv: unit-variance output, whatever the style."""
  conv = stylegan.ModConv(64, 32, 8, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 64))
  for scale in (0.1, 10.0):
    w = scale * jax.random.normal(jax.random.key(1), (2, 8))
    s = conv.affine(w)
    y = stylegan.conv3x3(x * s[:, None, None], conv.kernel[...] * conv.gain)
    d = jax.lax.rsqrt(jnp.square(s) @ jnp.sum(jnp.square(conv.kernel[...] * conv.gain), (0, 1)))
    std = float(jnp.std(y * d[:, None, None]))
    assert 0.85 < std < 1.15, (scale, std)


def test_upsample_filter():
  """[1,3,3,1]/4 upsampling keeps constants and the mean, and doubles each side."""
  x = jax.random.normal(jax.random.key(0), (1, 4, 4, 2))
  y = stylegan.upsample(x)
  assert y.shape == (1, 8, 8, 2)
  np.testing.assert_allclose(stylegan.upsample(jnp.ones((1, 3, 3, 1))), 1.0, rtol=1e-6)
  np.testing.assert_allclose(y[0, 2, 2], 0.75 * 0.75 * x[0, 1, 1] + 0.75 * 0.25 * (
      x[0, 0, 1] + x[0, 1, 0]) + 0.0625 * x[0, 0, 0], rtol=1e-5)


def test_equalised_lr_scales_at_run_time():
  layer = stylegan.EqLinear(16, 4, lr_mul=0.01, rngs=nnx.Rngs(0))
  assert abs(float(jnp.std(layer.kernel[...])) - 100.0) < 30.0      # stored N(0, 1) / lr_mul
  x = jnp.ones((1, 16))
  np.testing.assert_allclose(layer(x), x @ (layer.kernel[...] * 0.01 / 4.0), rtol=1e-5)


@pytest.mark.slow   # 15 s of eager convolutions here: make test-slow
def test_generator_shapes_truncation_and_ranges():
  g, d = small()
  assert g.num_ws == 4          # 8 px: conv at 4 px, two at 8 px, and the last toRGB
  z = jax.random.normal(jax.random.key(0), (4, 8))
  labels = jnp.array([0, 1, 2, 0])
  x = g(z, labels)
  assert x.shape == (4, 8, 8, 3) and bool(jnp.all(jnp.isfinite(x)))
  assert d(x, labels).shape == (4,)
  g.mapping.w_avg[...] = jnp.full((8,), 0.3)
  # psi = 0: every latent maps to the mean w, so every image is the same picture
  x0 = g(z, labels, truncation=0.0)
  np.testing.assert_allclose(x0, jnp.broadcast_to(x0[:1], x0.shape), atol=1e-5)
  ws = jnp.broadcast_to(jnp.full((1, 1, 8), 0.3), (1, g.num_ws, 8))
  np.testing.assert_allclose(x0[:1], g.synthesis(ws), atol=1e-5)
  assert float(jnp.abs(g(z, labels, truncation=0.5) - x).max()) > 1e-3


@pytest.mark.slow   # 6 s: make test-slow
def test_style_mixing_layers_take_the_second_latent():
  """Changing the w of the later layers changes the image; the ws are used per layer."""
  g, _ = small(num_classes=0, conditional=False)
  w1 = jax.random.normal(jax.random.key(0), (1, 8))
  w2 = jax.random.normal(jax.random.key(1), (1, 8))
  ws = jnp.broadcast_to(w1[:, None], (1, g.num_ws, 8))
  mixed = ws.at[:, -1].set(w2)
  a, b = g.synthesis(ws), g.synthesis(mixed)
  assert float(jnp.abs(a - b).max()) > 1e-4


def test_minibatch_std_never_mixes_groups():
  x = jnp.concatenate([jnp.zeros((4, 2, 2, 3)), jax.random.normal(jax.random.key(0), (4, 2, 2, 3))])
  y = stylegan.minibatch_std(x, 4)
  assert y.shape == (8, 2, 2, 4)
  np.testing.assert_allclose(y[:4, ..., -1], 1e-4, atol=1e-4)      # the constant group: ~0
  assert float(y[4:, ..., -1].min()) > 0.3


@pytest.mark.slow   # 4 s: make test-slow
def test_noise_changes_the_picture_by_its_strength():
  g, _ = small(num_classes=0, conditional=False)
  ws = jnp.zeros((1, g.num_ws, 8))
  base = g.synthesis(ws)
  other = g.synthesis(ws, g.random_noise(jax.random.key(5), 1))
  np.testing.assert_allclose(base, other, atol=1e-6)               # strength starts at 0
  for conv in g.convs:
    conv.noise_strength[...] = jnp.asarray(1.0)
  assert float(jnp.abs(g.synthesis(ws) - g.synthesis(ws, g.random_noise(jax.random.key(5), 1))).max()) > 1e-3


def test_resolution_and_options_refused():
  with pytest.raises(ConfigError, match="power-of-two"):
    small(shape=(24, 24, 3))
  with pytest.raises(ConfigError, match="adapter"):
    small(adapter_dim=4)
