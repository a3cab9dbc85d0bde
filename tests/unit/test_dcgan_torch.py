"""PyTorch's DCGAN-tutorial generator in artjax (artjax.image.models.dcgan_torch): the
sub-pixel form of ConvTranspose2d(4, 2, 1) is exact, state dicts map both ways, and foreign
files are refused with one line (run.py import)."""

import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from artjax import ConfigError
from artjax.commands import import_run
from artjax.image.models import dcgan_torch


def _torch_conv_transpose(x, k):
  """ConvTranspose2d(k=4, s=2, p=1) by its definition: the input dilated by 2, padded by
  k - 1 - p = 2, convolved with the spatially flipped kernel."""
  return lax.conv_general_dilated(x, k[::-1, ::-1], (1, 1), ((2, 2), (2, 2)), lhs_dilation=(2, 2),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def test_subpixel_transposed_convolution_is_exact():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 5, 6, 3)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(4, 4, 3, 4)), jnp.float32)
  a, b = dcgan_torch.conv_transpose_4s2(x, k), _torch_conv_transpose(x, k)
  assert a.shape == b.shape == (2, 10, 12, 4)
  tol = 64 * np.finfo(np.float32).eps * float(jnp.abs(b).max())   # sums of 12 products
  np.testing.assert_allclose(a, b, atol=tol)
  f = lambda conv: lambda x, k: jnp.sum(jnp.sin(conv(x, k)))
  for u, v in zip(jax.grad(f(dcgan_torch.conv_transpose_4s2), (0, 1))(x, k),
                  jax.grad(f(_torch_conv_transpose), (0, 1))(x, k)):
    np.testing.assert_allclose(u, v, atol=tol * 10)


def _random_state_dict(chans, seed=0):
  rng = np.random.default_rng(seed)
  sd, n = {}, 0
  for i in range(len(chans) - 1):
    sd[f"main.{n}.weight"] = rng.normal(0, 0.1, (chans[i], chans[i + 1], 4, 4)).astype(np.float32)
    if i < len(chans) - 2:
      c = chans[i + 1]
      sd.update({f"main.{n + 1}.weight": rng.uniform(0.5, 1.5, c).astype(np.float32),
                 f"main.{n + 1}.bias": rng.normal(0, 0.1, c).astype(np.float32),
                 f"main.{n + 1}.running_mean": rng.normal(0, 0.1, c).astype(np.float32),
                 f"main.{n + 1}.running_var": rng.uniform(0.5, 2, c).astype(np.float32),
                 f"main.{n + 1}.num_batches_tracked": np.array(7)})
      n += 3
    else:
      n += 2
  return sd


def test_state_dicts_map_both_ways_and_draw_the_same():
  chans = (8, 32, 16, 3)
  sd = _random_state_dict(chans)
  assert dcgan_torch.channels_of(sd) == chans
  g = dcgan_torch.TutorialGenerator(chans)
  nnx.update(g, dcgan_torch.from_state_dict(sd))
  back = dcgan_torch.to_state_dict(nnx.to_pure_dict(nnx.state(g)))
  assert set(back) == set(sd)
  g2 = dcgan_torch.TutorialGenerator(chans)
  nnx.update(g2, dcgan_torch.from_state_dict(back))
  z = jax.random.normal(jax.random.key(0), (3, 8))
  a, b = g(z), g2(z)
  assert a.shape == (3, 16, 16, 3)
  np.testing.assert_allclose(a, b, atol=1e-6)


def test_written_state_dicts_read_back(tmp_path):
  from artjax.nn import torch_state
  sd = _random_state_dict((8, 16, 3))
  sd["t"] = np.arange(6, dtype=np.float32).reshape(2, 3).T     # not C-contiguous
  torch_state.write(str(tmp_path / "g.pth"), sd)
  back = torch_state.read(str(tmp_path / "g.pth"))
  assert set(back) == set(sd)
  for k in sd:
    assert back[k].dtype == sd[k].dtype and np.array_equal(back[k], sd[k]), k


def test_foreign_state_dicts_are_refused():
  with pytest.raises(ValueError, match="not a DCGAN-tutorial generator|no main.N.weight"):
    dcgan_torch.channels_of({"conv.weight": np.zeros((3, 3, 3, 3))})
  sd = _random_state_dict((8, 16, 3))
  sd["main.9.extra"] = np.zeros(2)
  with pytest.raises(ValueError, match="does not have"):
    dcgan_torch.from_state_dict(sd)


class _Boom:
  def __reduce__(self):
    return (os.system, ("echo pwned > boom.txt",))


def test_import_refuses_a_pickle_with_code_and_writes_nothing(tmp_path, monkeypatch):
  bad = tmp_path / "network-snapshot.pkl"
  bad.write_bytes(pickle.dumps({"G_ema": _Boom()}))
  monkeypatch.chdir(tmp_path)
  with pytest.raises(ConfigError, match="not a PyTorch state dict artjax can read.*system"):
    import_run.generator_state_dict(str(bad))
  assert not (tmp_path / "boom.txt").exists()
  with pytest.raises(ConfigError, match="does not exist"):
    import_run.generator_state_dict(str(tmp_path / "missing.pth"))
