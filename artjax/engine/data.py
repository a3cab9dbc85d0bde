"""Dataset plumbing every domain shares: the data dir, TFDS builders prepared once (one
writer across processes), the offline check, and a per-process cache of loaded datasets.
Knows no dataset (npm packages are fetched by artjax.npm)."""

from __future__ import annotations

import os
import socket

from artjax import ConfigError

ENV_DATA_DIR = "ARTJAX_DATA_DIR"


def default_data_dir() -> str:
  env = os.environ.get(ENV_DATA_DIR)
  if env:
    return env
  cache = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
  return os.path.join(cache, "artjax", "tensorflow_datasets")



def network_reachable(host="storage.googleapis.com", port=443, timeout=2.0) -> bool:
  try:
    with socket.create_connection((host, port), timeout=timeout):
      return True
  except OSError:
    return False



def prepare_once(builder, progress: bool = False) -> None:
  """Prepares `builder` if needed; with several processes only process 0 writes and the
  others wait at a barrier (every process passes it, prepared or not)."""
  import jax
  import tensorflow_datasets as tfds
  multi = jax.process_count() > 1
  if not is_prepared(builder) and (not multi or jax.process_index() == 0):
    if not progress:
      tfds.disable_progress_bar()
    else:
      tfds.enable_progress_bar()
    builder.download_and_prepare()
  if multi:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(f"artjax-prepare-{builder.name}")


def is_prepared(builder) -> bool:
  return os.path.exists(os.path.join(os.fspath(builder.data_path), "dataset_info.json"))



def text_codes(text: str, size: int):
  """A string as int32 code points [size], zero-padded (TFDS Tensor features, no TF)."""
  import numpy as np
  out = np.zeros(size, np.int32)
  cps = [ord(c) for c in text[:size]]
  out[:len(cps)] = cps
  return out


def codes_text(codes, n=None) -> str:
  """The string of `text_codes` (the first `n` code points, or all the non-zero ones)."""
  import numpy as np
  codes = np.asarray(codes)
  return "".join(chr(int(c)) for c in (codes[:n] if n is not None else codes[codes > 0]))


#: whole datasets loaded in this process, by (name, data dir)
CACHE: dict = {}


def read_regular(path: str, max_bytes: int) -> bytes:
  """At most `max_bytes` + 1 bytes of a regular file (the caller tells "over the limit" by the
  length). A FIFO, a device or a link to one is a ValueError, never opened for a blocking read."""
  import stat
  fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
  with os.fdopen(fd, "rb") as f:
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
      raise ValueError(f"{path} is not a regular file")
    return f.read(max_bytes + 1)
