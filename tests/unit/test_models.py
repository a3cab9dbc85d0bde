import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from artjax import ConfigError
from artjax.image.models import build_gan


def cfg(name, conditional=False, latent=16, width=32):
  return ml_collections.ConfigDict(dict(name=name, latent_dim=latent, width=width, depth=2,
                                        conditional=conditional, adapter_dim=0))


SHAPES = [(8, 8, 1), (28, 28, 1), (32, 32, 3)]
# The DCGAN's eager convolutions take seconds per shape on this CPU: beyond the smallest
# shape (and unconditional), make test-slow.
CASES = ([(s, "mlp", c) for s in SHAPES for c in (False, True)]
         + [pytest.param(s, "dcgan", c, marks=[pytest.mark.slow] if (s != SHAPES[0] or not c)
                         else []) for s in SHAPES for c in (True, False)])


@pytest.mark.parametrize("shape,name,conditional", CASES)
def test_shapes(shape, name, conditional):
  g, d = build_gan(cfg(name, conditional), shape, 10, jax.random.key(0))
  z = jnp.ones((5, g.latent_dim))
  labels = jnp.arange(5) if conditional else None
  x = g(z, labels)
  assert x.shape == (5,) + shape
  lo, hi = g.pixel_range
  assert float(x.min()) >= lo and float(x.max()) <= hi
  assert d(x, labels).shape == (5,)


def test_seed_architecture_exact():
  g, d = build_gan(cfg("mlp_seed", latent=100, width=256), (28, 28, 1), 10, jax.random.key(0))
  gp = nnx.to_pure_dict(nnx.state(g))
  dp = nnx.to_pure_dict(nnx.state(d))
  assert gp["fc1"]["kernel"].shape == (100, 256) and gp["fc2"]["kernel"].shape == (256, 784)
  assert dp["fc1"]["kernel"].shape == (784, 256) and dp["fc2"]["kernel"].shape == (256, 1)
  z = jax.random.normal(jax.random.key(1), (3, 100))
  h = jax.nn.sigmoid(z @ gp["fc1"]["kernel"] + gp["fc1"]["bias"])
  want = jax.nn.sigmoid(h @ gp["fc2"]["kernel"] + gp["fc2"]["bias"]).reshape(3, 28, 28, 1)
  np.testing.assert_allclose(g(z), want, rtol=1e-5, atol=1e-6)
  x = want
  hd = jax.nn.sigmoid(x.reshape(3, -1) @ dp["fc1"]["kernel"] + dp["fc1"]["bias"])
  np.testing.assert_allclose(d(x), (hd @ dp["fc2"]["kernel"] + dp["fc2"]["bias"])[:, 0], rtol=1e-5)


def test_seed_refuses_conditional():
  with pytest.raises(ConfigError, match="unconditional"):
    build_gan(cfg("mlp_seed", conditional=True), (8, 8, 1), 10)


def test_dcgan_needs_divisible_shape():
  with pytest.raises(ConfigError, match="divisible by 4"):
    build_gan(cfg("dcgan"), (30, 30, 1), 10)


def test_init_is_a_function_of_the_key():
  """Every weight matrix of both networks is drawn from the key: another key changes each
  of them, the same key gives them back bit for bit."""
  from flax import nnx

  def kernels(seed):
    nets = build_gan(cfg("mlp"), (8, 8, 1), 10, jax.random.key(seed))
    leaves = jax.tree_util.tree_flatten_with_path(nnx.state(nets, nnx.Param))[0]
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in leaves if np.asarray(x).ndim >= 2}
  a, b, again = kernels(0), kernels(1), kernels(0)
  assert len(a) >= 4 and a.keys() == b.keys() == again.keys()
  for k in a:
    assert not np.allclose(a[k], b[k]), f"{k} ignores the key"
    np.testing.assert_array_equal(a[k], again[k], err_msg=k)


@pytest.mark.slow   # 2.4 s: make test-slow
def test_mixed_precision_dot_fp32_exact_bf16_accumulates_in_fp32():
  from jax import lax
  from artjax.nn import precision
  x = jax.random.normal(jax.random.key(0), (6, 5, 48))
  w = jax.random.normal(jax.random.key(1), (48, 32)) / 7.0
  dims = (((2,), (0,)), ((), ()))
  # fp32: exactly lax.dot_general
  assert np.array_equal(precision.dot_general(x, w, dims), lax.dot_general(x, w, dims))

  def loss(w, x, dtype):
    y = precision.dot_general(x.astype(dtype), w.astype(dtype), dims)
    assert y.dtype == jnp.float32     # bf16 products accumulate and return in fp32
    return jnp.sum(jnp.sin(y))

  g32 = jax.grad(loss, argnums=(0, 1))(w, x, jnp.float32)
  g16 = jax.grad(loss, argnums=(0, 1))(w, x, jnp.bfloat16)
  for a, b in zip(g32, g16):
    assert b.dtype == jnp.float32
    rel = float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a))
    assert rel < 3e-2, rel
  # all three products (forward, both backward) multiply bf16 operands with fp32 results:
  # XLA:CPU must not have sent any of them back to fp32 operands.
  hlo = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2).lower(
      w, x, jnp.bfloat16).compile().as_text()
  assert _dot_types(hlo) == [("bf16", "bf16", "f32")] * 3, _dot_types(hlo)


def _dot_types(hlo: str):
  """(lhs, rhs, result) element types of every dot in compiled HLO text."""
  import re
  out, types = [], {}
  for line in hlo.splitlines():
    if line.rstrip().endswith("{") and "=" not in line.split("(")[0]:
      types = {}
    m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\w+)\[", line)
    if m:
      types[m.group(1)] = m.group(2)
      d = re.search(r" dot\(%?([\w.\-]+), %?([\w.\-]+)\)", line)
      if d:
        out.append((types.get(d.group(1)), types.get(d.group(2)), m.group(2)))
  return sorted(out)


def test_track_generator_draws_at_most_one_cell_per_track_and_row_and_passes_gradients():
  from artjax.image.models.gan import fold_columns
  c = cfg("tracks", conditional=True)
  c.tracks, c.fold = 4, 12
  g, d = build_gan(c, (16, 88, 1), 2, jax.random.key(0))
  z = jax.random.normal(jax.random.key(1), (64, g.latent_dim))
  labels = jnp.arange(64) % 2
  x = np.asarray(nnx.jit(lambda g, z, y: g(z, y))(g, z, labels))   # eager: op by op, slower
  assert x.shape == (64, 16, 88, 1) and set(np.unique(x)) <= {-1.0, 1.0}
  lit = (x[..., 0] > 0).sum(-1)
  assert lit.max() <= 4 and lit.min() >= 0 and lit.mean() > 2   # unisons and rests lower it
  # straight-through: the hard image's gradient reaches the generator's output layer
  gd, gs = nnx.split(g)

  def score(state):
    return jnp.sum(d(nnx.merge(gd, state)(z, labels), labels))
  grads = jax.jit(jax.grad(score))(gs)
  assert float(jnp.abs(grads["out"]["kernel"][...]).max()) > 0
  # the folded view: columns summed by index modulo 12 (pitch classes of a piano roll)
  roll = np.zeros((1, 2, 88, 1), np.float32)
  roll[0, 0, [0, 12, 24, 5], 0] = 1
  f = np.asarray(fold_columns(jnp.asarray(roll), 12))
  assert f.shape == (1, 2, 12, 1) and f[0, 0, 0, 0] == 3 and f[0, 0, 5, 0] == 1 and f.sum() == 4
  with pytest.raises(ConfigError):
    build_gan(c, (16, 16, 3), 2)
