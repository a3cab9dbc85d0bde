"""Loading the FID Inception-v3 weights the user supplies (nothing is downloaded): the PyTorch
file `pt_inception-2015-12-05-6726825d.pth` that pytorch-fid and StyleGAN2-ADA use (a state
dict with torchvision `Inception3` names), or an `.npz` of the same names.

A `.pth` in PyTorch's zip format is read without PyTorch (its pickle names tensors and the
zip holds their bytes); PyTorch's older single-pickle format needs `torch` installed. Every
tensor of the state dict is mapped: each BasicConv2d's conv weight and BatchNorm (folded into
a scale and shift), and `fc`; `num_batches_tracked` counters are the only keys ignored. A
missing, unknown or misshapen tensor is one ConfigError naming it, before anything compiles.
"""

from __future__ import annotations

import collections
import os
import pickle
import zipfile

import numpy as np

from artjax import ConfigError
from artjax.image.models import inception

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "BFloat16Storage": None,
           "ByteStorage": np.uint8, "BoolStorage": np.bool_}


def _rebuild_tensor(storage, offset, size, stride, *_):
  item = storage.itemsize
  view = np.lib.stride_tricks.as_strided(storage[offset:], tuple(size),
                                         tuple(s * item for s in stride))
  return np.array(view)


class _TorchUnpickler(pickle.Unpickler):
  """Only what a state dict needs: tensors, parameters, OrderedDict. Anything else (code an
  untrusted pickle could run) is refused."""

  def __init__(self, f, archive: zipfile.ZipFile, prefix: str):
    super().__init__(f)
    self.archive, self.prefix = archive, prefix

  def find_class(self, module, name):
    if (module, name) == ("collections", "OrderedDict"):
      return collections.OrderedDict
    if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
      return _rebuild_tensor
    if (module, name) == ("torch._utils", "_rebuild_parameter"):
      return lambda data, *_: data
    if module == "torch" and name in _DTYPES:
      return name
    raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a state dict")

  def persistent_load(self, pid):
    _, storage_type, key, _, _ = pid
    dtype = _DTYPES.get(storage_type if isinstance(storage_type, str) else "")
    if dtype is None:
      raise pickle.UnpicklingError(f"unsupported storage {storage_type}")
    return np.frombuffer(self.archive.read(f"{self.prefix}/data/{key}"), dtype)


def read_state_dict(path: str) -> dict:
  """{name: numpy array} of a PyTorch state dict file or an .npz."""
  if path.endswith(".npz"):
    with np.load(path) as z:
      return {k: np.asarray(z[k]) for k in z.files}
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as archive:
      pkl = [n for n in archive.namelist() if n.endswith("/data.pkl")]
      if not pkl:
        raise ConfigError(f"--inception: {path} is a zip without a PyTorch data.pkl")
      with archive.open(pkl[0]) as f:
        state = _TorchUnpickler(f, archive, pkl[0][: -len("/data.pkl")]).load()
  else:
    try:
      import torch
    except ImportError as e:
      raise ConfigError(f"--inception: {path} is in PyTorch's legacy format; install torch to "
                        "read it, or re-save it with torch.save (zip format) or as .npz") from e
    state = {k: v.numpy() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}
  if "state_dict" in state and isinstance(state["state_dict"], dict):
    state = state["state_dict"]
  return {k: np.asarray(v) for k, v in state.items()}


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
