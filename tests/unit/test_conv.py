"""artjax.nn.conv: the same numbers as XLA's convolution (values, gradients, second
derivatives) for every stride and padding artjax uses, and no unoptimised XLA:CPU convolution
when differentiated inside a `lax.scan` (where `lax.conv_general_dilated` falls back)."""

import functools
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from artjax.nn.conv import conv2d, depth_to_space, space_to_depth

CASES = [(8, 3, 1, "SAME", 3, 5), (8, 4, 2, "SAME", 4, 6), (9, 3, 2, "SAME", 2, 3),
         (8, 3, 2, ((1, 1), (1, 1)), 2, 3), (7, 1, 1, "VALID", 3, 4),
         (16, 4, 2, ((1, 1), (1, 1)), 3, 8), (8, 3, 1, ((0, 2), (2, 0)), 2, 2),
         (10, 9, 1, "VALID", 3, 2), (8, 3, 1, ((3, 3), (0, 0)), 2, 2), (8, 3, 1, "SAME", 24, 8)]


def _ref(s, pad):
  return lambda x, w: lax.conv_general_dilated(x, w, (s, s), pad,
                                               dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("h,k,s,pad,cin,cout", CASES)
def test_values_gradients_and_second_derivatives_match_xla(h, k, s, pad, cin, cout):
  x = jax.random.normal(jax.random.key(0), (2, h, h + 2, cin))
  w = jax.random.normal(jax.random.key(1), (k, k, cin, cout))
  got, ref = (lambda x, w: conv2d(x, w, (s, s), pad)), _ref(s, pad)
  # float32 sums of k*k*cin products of N(0,1) numbers: a few ulps of sqrt(k*k*cin)
  tol = 64 * float(np.finfo(np.float32).eps) * k * k * cin
  f = lambda c: lambda x, w: jnp.sum(jnp.sin(c(x, w)))
  r1 = lambda c: lambda w: jnp.sum(jax.grad(f(c))(x, w) ** 2)     # R1's double backward

  @functools.partial(jax.jit, static_argnums=0)   # one program per side (eager: op by op, slower)
  def both(c):
    return c(x, w), jax.grad(f(c), (0, 1))(x, w), jax.grad(r1(c))(w)
  (y_got, g_got, h_got), (y_ref, g_ref, h_ref) = both(got), both(ref)
  np.testing.assert_allclose(y_got, y_ref, rtol=tol, atol=tol)
  for a, b in zip(g_got, g_ref):
    np.testing.assert_allclose(a, b, rtol=10 * tol, atol=10 * tol)
  np.testing.assert_allclose(h_got, h_ref, rtol=1e-3, atol=100 * tol)


def test_bf16_operands_accumulate_in_fp32():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 16)).astype(jnp.bfloat16)
  w = jax.random.normal(jax.random.key(1), (3, 3, 16, 4)).astype(jnp.bfloat16)
  y = conv2d(x, w)
  assert y.dtype == jnp.float32
  want = _ref(1, "SAME")(x.astype(jnp.float32), w.astype(jnp.float32))
  np.testing.assert_allclose(y, want, rtol=1e-2, atol=1e-2)
  dx, dw = jax.grad(lambda x, w: jnp.sum(conv2d(x, w) ** 2), (0, 1))(x, w)
  assert dx.dtype == dw.dtype == jnp.bfloat16


def test_space_to_depth_inverts_depth_to_space():
  x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
  np.testing.assert_array_equal(depth_to_space(space_to_depth(x, 2), 2), x)
  assert space_to_depth(x, 2).shape == (2, 2, 3, 12)


_PROBE = textwrap.dedent("""
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"; os.environ["TF_CPP_VMODULE"] = "thunk_emitter=2"
    os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    import jax, jax.numpy as jnp
    from artjax.nn.conv import conv2d
    which = sys.argv[1]
    conv = (conv2d if which == "artjax" else lambda x, w, s: jax.lax.conv_general_dilated(
        x, w, (s, s), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
    def d(p, x):   # a discriminator: 3x3, 4x4 stride 2, 3x3
      h = jax.nn.leaky_relu(conv(x, p[0], 1), 0.2)
      h = jax.nn.leaky_relu(conv(h, p[1], 2), 0.2)
      return jnp.sum(conv(h, p[2], 1))
    def loss(p, x):
      gx = jax.grad(d, 1)(p, x)                 # R1: a second derivative
      return d(p, x) + jnp.sum(gx ** 2)
    def body(p, _):
      g = jax.grad(loss)(p, jnp.ones((2, 8, 8, 3)))
      return [a - 1e-3 * b for a, b in zip(p, g)], None
    p = [jnp.ones((3, 3, 3, 4)), jnp.ones((4, 4, 4, 8)), jnp.ones((3, 3, 8, 2))]
    jax.jit(lambda p: jax.lax.scan(body, p, None, length=2)[0]).lower(p).compile()
""")


def _fallbacks(which: str) -> int:
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
  r = subprocess.run([sys.executable, "-c", _PROBE, which], capture_output=True, text=True,
                     env=env, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  return r.stderr.count("Falling back to unoptimized convolution")


def test_no_unoptimised_convolution_inside_a_scan():
  assert _fallbacks("lax") > 0        # the detector sees XLA's own convolutions fall back
  assert _fallbacks("artjax") == 0


@pytest.mark.parametrize("h,k,s", [(16, 3, 1), (16, 3, 2), (15, 5, 2), (9, 5, 1), (7, 3, 2)])
def test_depthwise_matches_xla_grouped_convolution(h, k, s):
  from artjax.nn.conv import depthwise_conv2d
  rng = np.random.default_rng(h * 10 + k + s)
  x = jnp.asarray(rng.normal(size=(2, h, h, 6)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(k, k, 6)), jnp.float32)
  ref = lambda x, w: lax.conv_general_dilated(x, w[:, :, None, :], (s, s), "SAME",
                                              dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                              feature_group_count=6)
  ours = lambda x, w: depthwise_conv2d(x, w, s)
  loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))
  run = jax.jit(lambda f: (f(x, w), jax.grad(loss(f), (0, 1))(x, w)), static_argnums=0)
  (a, ga), (b, gb) = run(ours), run(ref)
  assert a.shape == b.shape
  tol = 32 * np.finfo(np.float32).eps * k * k * float(jnp.abs(b).max())
  np.testing.assert_allclose(a, b, atol=tol)
  for u, v in zip(ga, gb):   # the kernel's gradient sums over 2*h*h positions
    np.testing.assert_allclose(u, v, atol=tol * 2 * h * h / (k * k))
