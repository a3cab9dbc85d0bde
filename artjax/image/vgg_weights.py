"""Loading ImageNet VGG19 weights the user supplies (nothing is downloaded).

Accepted files (see docs/style.md for how to get and convert them):
* Keras `.h5` (`keras.applications.VGG19(include_top=False).save_weights(...)`, or the classic
  `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`): datasets named `block{B}_conv{C}`
  with `kernel` [3, 3, in, out] and `bias`; caffe input convention (BGR, mean-subtracted 0-255).
* `.npz` with the same Keras names (`block1_conv1/kernel`, `block1_conv1/bias`, ...), or with
  torchvision's names (`features.0.weight` [out, in, 3, 3], `features.0.bias`, ...) from
  `torchvision.models.vgg19(weights="IMAGENET1K_V1").state_dict()`; torchvision input
  convention (RGB in [0, 1], normalised by ImageNet mean and std).
"""

from __future__ import annotations

import os
import re

import numpy as np

from artjax import ConfigError
from artjax.image.models import features as fnet

# torchvision's `features.N` index of each VGG19 convolution, in order.
TORCH_INDEX = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
_KERAS = re.compile(r"block(\d)_conv(\d)\D.*(kernel|bias)")


def _keras_name(block: str, conv: str) -> str:
  return f"conv{block}_{conv}"


def _from_keras(items) -> dict:
  params = {}
  for key, value in items:
    m = _KERAS.search(key)
    if m:
      params.setdefault(_keras_name(m.group(1), m.group(2)), {})[m.group(3)] = np.asarray(value, np.float32)
  return params


def _from_torch(arrays) -> dict:
  params = {}
  for (name, _, _), idx in zip(fnet.VGG19_CONVS, TORCH_INDEX):
    w, b = f"features.{idx}.weight", f"features.{idx}.bias"
    if w in arrays and b in arrays:
      params[name] = {"kernel": np.transpose(np.asarray(arrays[w], np.float32), (2, 3, 1, 0)),
                      "bias": np.asarray(arrays[b], np.float32)}
  return params


def _h5_items(path):
  import h5py
  out = []
  with h5py.File(path, "r") as f:
    f.visititems(lambda name, obj: out.append((name, obj[()])) if isinstance(obj, h5py.Dataset) else None)
  return out


def load(path: str, net: fnet.FeatureNet) -> tuple[dict, str]:
  """(params for the convolutions `net` needs, input convention "caffe" | "torch").
  A ConfigError, before anything compiles, for a missing file, another format, or a layer
  missing or of the wrong shape."""
  if not path:
    raise ConfigError("--features=vgg19 needs --weights=FILE (a Keras .h5 or an .npz; see docs/style.md)")
  if not os.path.isfile(path):
    raise ConfigError(f"--weights: {path} does not exist")
  try:
    if path.endswith((".h5", ".hdf5")):
      params, convention = _from_keras(_h5_items(path)), "caffe"
    else:
      with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
      torch_style = any(k.startswith("features.") for k in arrays)
      params = _from_torch(arrays) if torch_style else _from_keras(arrays.items())
      convention = "torch" if torch_style else "caffe"
  except ConfigError:
    raise
  except Exception as e:  # h5py/numpy raise many kinds for a corrupt file
    raise ConfigError(f"--weights: {path} is not a readable .h5/.npz ({' '.join(str(e).split())})") from e
  return _checked(params, net, path), convention


def _checked(params: dict, net: fnet.FeatureNet, path: str) -> dict:
  out = {}
  for name, cin, cout in fnet.needed_convs(net):
    layer = params.get(name, {})
    if "kernel" not in layer or "bias" not in layer:
      raise ConfigError(f"--weights: {path} has no {name} kernel and bias (VGG19 layer names "
                        f"block1_conv1.. or torchvision features.N expected)")
    if layer["kernel"].shape != (3, 3, cin, cout) or layer["bias"].shape != (cout,):
      raise ConfigError(f"--weights: {name} in {path} has shape {layer['kernel'].shape}, expected "
                        f"{(3, 3, cin, cout)} (is it VGG19?)")
    out[name] = layer
  return out
