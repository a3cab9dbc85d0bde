"""NVIDIA StyleGAN2-ADA network pickles (`network-snapshot-*.pkl`) read as data: no torch,
and no code from the file is ever run.

NVIDIA's training loop pickles `{G, D, G_ema, augment_pipe, training_set_kwargs}` with plain
`pickle`; each network module goes through `torch_utils.persistence`, which writes it as
`_reconstruct_persistent_obj(meta)` where `meta` holds the module's *Python source* and its
`__dict__` (parameters, buffers, child modules, init arguments). Unpickling normally executes
that source. Here the restricted unpickler turns each such record into a `Record` (class name +
state) without looking at the source, rebuilds tensors from their bytes (a tensor pickled with
plain pickle is a legacy `torch.save` of its storage) and refuses any other global -- the way a
hostile pickle runs code -- with `UnpicklingError`. `stylegan2_ada_params` then maps the records
onto `artjax.image.models.stylegan2_ada` (NHWC/HWIO layouts).

StyleGAN3 pickles (`networks_stylegan3`: a `SynthesisInput` and alias-free layers) read as data
but are a different network; `stylegan2_ada_params` refuses them with one line.
"""

from __future__ import annotations

import collections
import io
import pickle

import numpy as np

from artjax.nn import torch_state

MAX_BYTES = 8 << 30          # a pickle bigger than this is refused before it is read
SAFE_DTYPES = ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1", "c8",
               "c16", "?")


class Record:
  """One persistent module of an NVIDIA pickle, as data: its class name and its `__dict__`."""

  def __init__(self, class_name: str, state: dict):
    self.class_name, self.state = class_name, state

  def __repr__(self):
    return f"Record({self.class_name})"

  def child(self, name: str) -> "Record":
    mods = self.state.get("_modules") or {}
    if not isinstance(mods.get(name), Record):
      raise KeyError(f"{self.class_name} has no module {name!r}")
    return mods[name]

  def has(self, name: str) -> bool:
    return isinstance((self.state.get("_modules") or {}).get(name), Record)

  def tensor(self, name: str) -> np.ndarray:
    for table in ("_parameters", "_buffers"):
      value = (self.state.get(table) or {}).get(name)
      if isinstance(value, np.ndarray):
        return value
    raise KeyError(f"{self.class_name} has no tensor {name!r}")

  def attr(self, name: str, default=None):
    return self.state.get(name, default)

  def kwargs(self) -> dict:
    return dict(self.state.get("_init_kwargs") or {})


class EasyDict(dict):
  """dnnlib.util.EasyDict as a plain dict (no attribute magic needed)."""


def _persistent(meta):
  if not isinstance(meta, dict) or meta.get("type") != "class":
    raise pickle.UnpicklingError("a persistent object that is not a module record")
  name, state = meta.get("class_name"), meta.get("state")
  if not isinstance(name, str) or not isinstance(state, dict):
    raise pickle.UnpicklingError("a module record without a class name and state")
  return Record(name, state)   # meta["module_src"] is the code unpickling would run: ignored


class _DType:
  """numpy's dtype reconstruction, for the few plain numeric types a pickle's scalars use."""

  def __init__(self, name, *_):
    if name not in SAFE_DTYPES:
      raise pickle.UnpicklingError(f"unexpected numpy dtype {name!r}")
    self.dtype = np.dtype(name)

  def __setstate__(self, state):
    if isinstance(state, tuple) and len(state) > 1 and state[1] in "<>|=":
      self.dtype = self.dtype.newbyteorder(state[1]) if state[1] in "<>" else self.dtype


def _scalar(dtype, data=None):
  if not isinstance(dtype, _DType) or not isinstance(data, bytes):
    raise pickle.UnpicklingError("an unexpected numpy scalar")
  return np.frombuffer(data, dtype.dtype)[0].item()


def _storage(data):
  if not isinstance(data, bytes):
    raise pickle.UnpicklingError("a tensor storage that is not bytes")
  return torch_state.read_storage_bytes(data)


def _tensor(storage, offset, size, stride, *_):
  if not isinstance(storage, np.ndarray):
    raise pickle.UnpicklingError("a tensor without a storage")
  return torch_state._rebuild_tensor(storage, offset, size, stride)


_GLOBALS = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("torch._utils", "_rebuild_tensor_v2"): _tensor,
    ("torch._utils", "_rebuild_parameter"): lambda data, *_: data,
    ("torch._utils", "_rebuild_parameter_with_state"): lambda data, *_: data,
    ("torch.storage", "_load_from_bytes"): _storage,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "dtype"): _DType,
}


class NvidiaUnpickler(pickle.Unpickler):
  def find_class(self, module, name):
    found = _GLOBALS.get((module, name))
    if found is None and module.startswith("dnnlib.tflib"):
      raise pickle.UnpicklingError(
          "a TensorFlow StyleGAN/StyleGAN2 pickle (dnnlib.tflib): convert it to a PyTorch "
          "pickle with NVIDIA's stylegan2-ada-pytorch legacy.py first")
    if found is None:
      raise pickle.UnpicklingError(
          f"it asks to call {module}.{name}, which a network pickle needs not and which could "
          "run code: refused")
    return found

  def persistent_load(self, pid):
    raise pickle.UnpicklingError("unexpected persistent id (a torch.save file, not a pickle)")


def looks_like(path: str) -> bool:
  """True when the file is a plain pickle (not a zip, not a legacy torch.save file)."""
  with open(path, "rb") as f:
    head = f.read(2)
  if len(head) < 2 or head[0] != 0x80:          # pickle protocol 2+ starts with PROTO
    return False
  try:
    with open(path, "rb") as f:
      first = torch_state.StateUnpickler(f).load()
  except Exception:  # a dict holding records: the state unpickler refuses its globals
    return True
  return first != torch_state.LEGACY_MAGIC


def load(path: str) -> dict:
  """The pickle's top-level dict, networks as `Record`s. UnpicklingError on anything else."""
  with open(path, "rb") as f:
    f.seek(0, io.SEEK_END)
    if f.tell() > MAX_BYTES:
      raise pickle.UnpicklingError(f"{f.tell()} bytes: larger than any network pickle")
    f.seek(0)
    obj = NvidiaUnpickler(f).load()
  if not isinstance(obj, dict) or not any(isinstance(obj.get(k), Record)
                                          for k in ("G", "G_ema", "D")):
    raise pickle.UnpicklingError("no G, G_ema or D network in it (not a StyleGAN2-ADA "
                                 "network pickle)")
  return obj


# --- records -> artjax.image.models.stylegan2_ada parameters ---------------------------------

def _dense(rec: Record) -> dict:
  out = {"kernel": rec.tensor("weight").T.astype(np.float32)}
  bias = (rec.state.get("_parameters") or {}).get("bias")
  if isinstance(bias, np.ndarray):
    out["bias"] = bias.astype(np.float32)
  return out


def _hwio(w: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(w.transpose(2, 3, 1, 0)).astype(np.float32)


def _mapping(rec: Record, track_w_avg: bool) -> dict:
  n = int(rec.attr("num_layers"))
  out = {"fc": {i: _dense(rec.child(f"fc{i}")) for i in range(n)}}
  if rec.has("embed"):
    out["embed"] = _dense(rec.child("embed"))
  if track_w_avg:
    out["w_avg"] = rec.tensor("w_avg").astype(np.float32)
  return out


def _synthesis_layer(rec: Record) -> dict:
  if not rec.attr("use_noise", True):
    raise ValueError("a synthesis layer without noise (use_noise=False) is not supported")
  return {"affine": _dense(rec.child("affine")), "kernel": _hwio(rec.tensor("weight")),
          "noise_const": rec.tensor("noise_const").astype(np.float32),
          "noise_strength": np.asarray(rec.tensor("noise_strength"), np.float32).reshape(()),
          "bias": rec.tensor("bias").astype(np.float32)}


def _torgb(rec: Record) -> dict:
  return {"affine": _dense(rec.child("affine")),
          "kernel": rec.tensor("weight")[:, :, 0, 0].T.astype(np.float32),
          "bias": rec.tensor("bias").astype(np.float32)}


def generator_params(g: Record) -> dict:
  """NVIDIA's Generator record -> the stylegan2_ada Generator's parameter dict."""
  syn = g.child("synthesis")
  res = [int(r) for r in syn.attr("block_resolutions")]
  convs, rgbs = {}, {}
  for j, r in enumerate(res):
    block = syn.child(f"b{r}")
    if block.attr("architecture", "skip") != "skip":
      raise ValueError(f"generator architecture {block.attr('architecture')!r}: only NVIDIA's "
                       "default 'skip' is supported")
    if j == 0:
      convs[0] = _synthesis_layer(block.child("conv1"))
      const = np.ascontiguousarray(block.tensor("const").transpose(1, 2, 0)).astype(np.float32)
    else:
      convs[2 * j - 1] = _synthesis_layer(block.child("conv0"))
      convs[2 * j] = _synthesis_layer(block.child("conv1"))
    rgbs[j] = _torgb(block.child("torgb"))
  return {"mapping": _mapping(g.child("mapping"), True), "const": const, "convs": convs,
          "torgbs": rgbs}


def _conv(rec: Record) -> dict:
  out = {"kernel": _hwio(rec.tensor("weight"))}
  bias = (rec.state.get("_parameters") or {}).get("bias")
  if isinstance(bias, np.ndarray):
    out["bias"] = bias.astype(np.float32)
  return out


def discriminator_params(d: Record) -> dict:
  """NVIDIA's Discriminator record -> the stylegan2_ada Discriminator's parameter dict."""
  res = [int(r) for r in d.attr("block_resolutions")]
  blocks = {}
  for i, r in enumerate(res):
    block = d.child(f"b{r}")
    if block.attr("architecture", "resnet") != "resnet":
      raise ValueError(f"discriminator architecture {block.attr('architecture')!r}: only "
                       "NVIDIA's default 'resnet' is supported")
    blocks[i] = {"conv0": _conv(block.child("conv0")), "conv1": _conv(block.child("conv1")),
                 "skip": _conv(block.child("skip"))}
    if i == 0:
      blocks[i]["fromrgb"] = _conv(block.child("fromrgb"))
  epi = d.child("b4")
  fc = epi.child("fc").tensor("weight")                       # [C, C*16], NCHW flatten order
  c = fc.shape[0]
  fc_kernel = fc.reshape(fc.shape[0], fc.shape[1] // 16, 4, 4).transpose(2, 3, 1, 0)
  out = {"blocks": blocks, "conv": _conv(epi.child("conv")),
         "fc": {"kernel": np.ascontiguousarray(fc_kernel.reshape(-1, c)).astype(np.float32),
                "bias": epi.child("fc").tensor("bias").astype(np.float32)},
         "out": _dense(epi.child("out"))}
  if d.has("mapping"):
    out["mapping"] = _mapping(d.child("mapping"), False)
  return out


def model_config(g: Record, d: Record | None) -> dict:
  """The `model` block (configs/stylegan.py fields) that builds networks of g's and d's shape."""
  if g.has("synthesis") and g.child("synthesis").has("input"):
    raise ValueError("a StyleGAN3 generator (alias-free synthesis with a SynthesisInput): "
                     "artjax reads StyleGAN2-ADA pickles only")
  syn, mapping = g.child("synthesis"), g.child("mapping")
  skw = syn.kwargs()
  fc0 = mapping.child("fc0")
  first = syn.child(f"b{int(syn.attr('block_resolutions')[0])}").child("conv1")
  clamp = first.attr("conv_clamp")
  cfg = {"name": "stylegan2_ada", "latent_dim": int(g.attr("z_dim")),
         "w_dim": int(g.attr("w_dim")), "mapping_layers": int(mapping.attr("num_layers")),
         "mapping_lr_mul": float(fc0.attr("bias_gain")),
         "channel_base": int(skw.get("channel_base", 32768)),
         "channel_max": int(skw.get("channel_max", 512)),
         "conditional": int(g.attr("c_dim")) > 0, "adapter_dim": 0,
         "conv_clamp": float(clamp) if clamp is not None else 0.0,
         "resolution": int(g.attr("img_resolution")), "channels": int(g.attr("img_channels")),
         "c_dim": int(g.attr("c_dim"))}
  if d is not None:
    epi = d.child("b4")
    mbstd = epi.child("mbstd") if epi.has("mbstd") else None
    dkw = d.kwargs()
    if (int(dkw.get("channel_base", cfg["channel_base"])) != cfg["channel_base"]
        or int(dkw.get("channel_max", cfg["channel_max"])) != cfg["channel_max"]):
      raise ValueError("G and D have different channel_base/channel_max: not supported")
    cfg.update(mbstd_group=int(mbstd.attr("group_size") or 0) if mbstd else 4,
               mbstd_channels=int(mbstd.attr("num_channels")) if mbstd else 0,
               cmap_dim=int(epi.attr("cmap_dim") or 0),
               d_mapping_layers=(int(d.child("mapping").attr("num_layers"))
                                 if d.has("mapping") else cfg["mapping_layers"]))
  return cfg
