"""Loading the FID Inception-v3 weights the user supplies (nothing is downloaded): the PyTorch
file `pt_inception-2015-12-05-6726825d.pth` that pytorch-fid and StyleGAN2-ADA use (a state
dict with torchvision `Inception3` names), or an `.npz` of the same names.

A `.pth` in either of PyTorch's formats is read without PyTorch and without running code from
it (`artjax.nn.torch_state`). Every
tensor of the state dict is mapped: each BasicConv2d's conv weight and BatchNorm (folded into
a scale and shift), and `fc`; `num_batches_tracked` counters are the only keys ignored. A
missing, unknown or misshapen tensor is one ConfigError naming it, before anything compiles.
"""

from __future__ import annotations

import os

import numpy as np

from artjax import ConfigError
from artjax.image.models import inception
from artjax.nn import torch_state

def read_state_dict(path: str) -> dict:
  """{name: numpy array} of a PyTorch state dict file (either format, without PyTorch) or an .npz."""
  return torch_state.read(path)


def _expect(arrays, key, shape, path):
  if key not in arrays:
    raise ConfigError(f"--inception: {path} has no {key} (is it the FID Inception-v3?)")
  a = np.asarray(arrays[key], np.float32)
  if a.shape != tuple(shape):
    raise ConfigError(f"--inception: {key} in {path} has shape {list(a.shape)}, expected {list(shape)}")
  return a


def convert(arrays: dict, path: str = "the state dict") -> dict:
  """The parameter dict `inception.apply` takes, from torchvision-named tensors."""
  params, used = {}, set()
  for name, (cin, cout, (kh, kw), _, _) in inception.SPECS.items():
    w = _expect(arrays, f"{name}.conv.weight", (cout, cin, kh, kw), path)
    g, b, mean, var = (_expect(arrays, f"{name}.bn.{k}", (cout,), path)
                       for k in ("weight", "bias", "running_mean", "running_var"))
    scale = g / np.sqrt(var + inception.BN_EPS)
    params[name] = {"kernel": np.transpose(w, (2, 3, 1, 0)), "scale": scale,
                    "shift": b - mean * scale}
    used |= {f"{name}.conv.weight"} | {f"{name}.bn.{k}" for k in
                                       ("weight", "bias", "running_mean", "running_var")}
  w = _expect(arrays, "fc.weight", (inception.LOGITS, inception.FEATURES), path)
  params["fc"] = {"kernel": w.T.copy(), "bias": _expect(arrays, "fc.bias", (inception.LOGITS,), path)}
  used |= {"fc.weight", "fc.bias"}
  extra = sorted(k for k in arrays if k not in used and not k.endswith("num_batches_tracked"))
  if extra:
    raise ConfigError(f"--inception: {path} has tensors the FID Inception-v3 does not: "
                      f"{', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
  return params


def load(path: str) -> dict:
  if not path:
    raise ConfigError("Inception metrics need --inception=FILE (pt_inception-2015-12-05-6726825d.pth)")
  if not os.path.isfile(path):
    raise ConfigError(f"--inception: {path} does not exist")
  try:
    arrays = read_state_dict(path)
  except ConfigError:
    raise
  except Exception as e:  # zipfile/pickle/numpy raise many kinds for a corrupt file
    raise ConfigError(f"--inception: {path} is not a readable state dict ({' '.join(str(e).split())})") from e
  return convert(arrays, path)
