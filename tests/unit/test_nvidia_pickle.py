"""NVIDIA StyleGAN2-ADA's operations and pickles without torch: the FIR resampling and the
up-convolution against XLA's own transposed convolution and depthwise filter, NVIDIA's
minibatch-std grouping, and pickles that try to run code (refused, or read as data without
running it). The twin proof with PyTorch is tests/slow/test_stylegan2_ada_import_slow.py."""

import io
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from artjax.image import nvidia_pickle
from artjax.image.models import stylegan2_ada as ada
from artjax.nn import torch_state
from helpers import run_cli

F4 = np.outer([1, 3, 3, 1], [1, 3, 3, 1]).astype(np.float32) / 64.0


def _depthwise(x, f, pad, gain=1.0, down=1):
  """upfirdn2d's filter step by XLA's grouped convolution (the reference)."""
  c = x.shape[-1]
  k = jnp.tile((f * gain)[:, :, None, None], (1, 1, 1, c))
  y = jax.lax.conv_general_dilated(x, k, (1, 1), [pad, pad], feature_group_count=c,
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y[:, ::down, ::down]


def test_fir_filter_and_downsampler_are_upfirdn2d():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  np.testing.assert_allclose(ada.fir(x, (2, 2)), _depthwise(x, F4, (2, 2)), atol=1e-5)
  np.testing.assert_allclose(ada.fir(x, (1, 1), down=2), _depthwise(x, F4, (1, 1), down=2),
                             atol=1e-5)


def test_upsample_and_up_convolution_are_the_transposed_convolution_then_the_filter():
  x = jax.random.normal(jax.random.key(1), (2, 4, 4, 3))
  k = jax.random.normal(jax.random.key(2), (3, 3, 3, 5))       # HWIO; NVIDIA's w[o, i, y, x]
  # upsample2d: zeros interleaved (lhs dilation 2), pad (2, 1), the filter at gain 4
  z = jax.lax.pad(x, 0.0, ((0, 0, 0), (0, 1, 1), (0, 1, 1), (0, 0, 0)))
  np.testing.assert_allclose(ada.upsample2d(x), _depthwise(z, F4, (2, 1), gain=4.0), atol=1e-5)
  assert ada.upsample2d(x).shape == (2, 8, 8, 3)
  # conv_transpose2d(x, w^T, stride 2) as XLA's lhs-dilated convolution with the flipped
  # kernel, then the filter with padding 1 at gain 4
  t = jax.lax.conv_general_dilated(x, k[::-1, ::-1], (1, 1), [(2, 2), (2, 2)],
                                   lhs_dilation=(2, 2),
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  assert t.shape == (2, 9, 9, 5)
  np.testing.assert_allclose(ada.conv_up(x, k), _depthwise(t, F4, (1, 1), gain=4.0),
                             rtol=1e-5, atol=1e-4)


def test_minibatch_std_groups_sample_i_with_i_plus_n_over_g():
  # 8 samples, groups of 4: NVIDIA's groups are {0, 2, 4, 6} and {1, 3, 5, 7}
  x = np.zeros((8, 2, 2, 3), np.float32)
  x[1::2] = np.arange(4, dtype=np.float32)[:, None, None, None]     # group 2 varies
  y = np.asarray(ada.minibatch_std(jnp.asarray(x), 4))
  assert y.shape == (8, 2, 2, 4)
  np.testing.assert_allclose(y[0::2, ..., 3], np.sqrt(1e-8), rtol=1e-3)
  np.testing.assert_allclose(y[1::2, ..., 3], np.sqrt(np.var(np.arange(4.0)) + 1e-8), rtol=1e-5)


class _Call:
  def __init__(self, fn, *args):
    self.fn, self.args = fn, args

  def __reduce__(self):
    return (self.fn, self.args)


def _write(path, obj):
  buf = io.BytesIO()
  torch_state._Writer(buf, protocol=2).dump(obj)
  with open(path, "wb") as f:
    f.write(buf.getvalue())


def _record(class_name, src):
  meta = {"type": "class", "version": 4, "module_src": src, "class_name": class_name,
          "state": {"_parameters": {}, "_buffers": {}, "_modules": {}}}
  return _Call(torch_state._Global("torch_utils.persistence", "_reconstruct_persistent_obj"),
               meta)


def test_a_pickle_that_calls_anything_else_is_refused_and_nothing_is_written(tmp_path):
  marker = tmp_path / "ran"
  path = str(tmp_path / "evil.pkl")
  _write(path, {"G": _Call(torch_state._Global("os", "system"), f"touch {marker}")})
  with pytest.raises(pickle.UnpicklingError, match="os.system"):
    nvidia_pickle.load(path)
  wd = tmp_path / "w"
  r = run_cli("import", f"--from={path}", f"--workdir={wd}")
  assert r.returncode != 0 and not marker.exists() and not wd.exists()
  err = r.stderr.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: --from:") and "os.system" in err[0]


def test_a_tensorflow_pickle_is_named(tmp_path):
  path = str(tmp_path / "stylegan2-ffhq-config-f.pkl")
  _write(path, {"G": _Call(torch_state._Global("dnnlib.tflib.network", "Network"))})
  with pytest.raises(pickle.UnpicklingError, match="TensorFlow StyleGAN"):
    nvidia_pickle.load(path)


def test_the_module_source_in_a_pickle_is_never_run(tmp_path):
  marker = tmp_path / "ran"
  src = f"open({str(marker)!r}, 'w').write('x')\nclass Generator: pass\n"
  path = str(tmp_path / "network-snapshot-000000.pkl")
  _write(path, {"G_ema": _record("Generator", src), "G": _record("Generator", src)})
  snap = nvidia_pickle.load(path)
  assert isinstance(snap["G_ema"], nvidia_pickle.Record) and not marker.exists()
  assert nvidia_pickle.looks_like(path)
  r = run_cli("import", f"--from={path}", f"--workdir={tmp_path / 'w'}")
  # a record with no networks inside: one line, nothing run, nothing written
  assert r.returncode != 0 and not marker.exists() and not (tmp_path / "w").exists()
  assert len(r.stderr.strip().splitlines()) == 1 and "error: --from:" in r.stderr


def test_a_stylegan3_generator_is_named_and_refused():
  syn = nvidia_pickle.Record("SynthesisNetwork", {"_modules": {
      "input": nvidia_pickle.Record("SynthesisInput", {})}})
  g = nvidia_pickle.Record("Generator", {"_modules": {"synthesis": syn}})
  with pytest.raises(ValueError, match="StyleGAN3"):
    nvidia_pickle.model_config(g, None)


def test_legacy_files_and_zips_are_not_taken_for_nvidia_pickles(tmp_path):
  path = str(tmp_path / "sd.pt")
  torch_state.write(path, {"main.0.weight": np.zeros((2, 2), np.float32)})
  assert not nvidia_pickle.looks_like(path)
  other = tmp_path / "x.pkl"
  other.write_bytes(b"not a pickle")
  assert not nvidia_pickle.looks_like(str(other))
  assert os.path.getsize(path) > 0
