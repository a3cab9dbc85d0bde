"""Weight compression as pure functions on weight pytrees (nested dicts of arrays).

Quantisation is weight-only and per output channel: every floating kernel or table with
two or more axes gets one fp32 scale per entry of its last axis (the output channel of a
Dense or Conv kernel, the model dimension of an embedding table), scale = max|w| / qmax
over the other axes, values round(w / scale) clipped to [-qmax, qmax]. Biases and norm
scales stay fp32. A quantised leaf becomes a small dict:

    {"int8": int8 [...], "scale": f32 [C]}      bits=8, qmax=127
    {"int4": uint8 [ceil(n/2), ...], "scale"}   bits=4, qmax=7, two values per byte along
                                                axis 0 (low nibble first)
    {"bf16": bf16 [...]}                        bits=16 (storage only)

`dequantize(q, like)` rebuilds the fp32 tree (shapes and dtypes from `like`, abstract or
concrete), so it runs inside a compiled or exported function: the int8/int4 arrays are
what is stored.

Pruning is global magnitude pruning over the same leaves: the `sparsity` fraction of all
their weights with the smallest |w| are zeroed (`magnitude_mask`, `apply_mask`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

QMAX = {8: 127, 4: 7}
BITS = (16, 8, 4)


def compressible(x) -> bool:
  """Kernels and tables: floating leaves with at least two axes."""
  return jnp.issubdtype(x.dtype, jnp.floating) and len(x.shape) >= 2


def _pack4(q):
  """int8 values in [-8, 7] -> uint8, two per byte along axis 0 (padded to even)."""
  if q.shape[0] % 2:
    q = jnp.concatenate([q, jnp.zeros((1,) + q.shape[1:], q.dtype)], 0)
  u = (q & 0xF).astype(jnp.uint8)
  return u[0::2] | (u[1::2] << 4)


def _unpack4(p, n: int):
  lo, hi = (p & 0xF).astype(jnp.int8), (p >> 4).astype(jnp.int8)
  both = jnp.stack([lo, hi], 1).reshape((-1,) + p.shape[1:])[:n]
  return jnp.where(both >= 8, both - 16, both)


def _quantize_leaf(x, bits: int):
  if not compressible(x):
    return x
  if bits == 16:
    return {"bf16": x.astype(jnp.bfloat16)}
  qmax = QMAX[bits]
  scale = jnp.max(jnp.abs(x.astype(jnp.float32)), axis=tuple(range(x.ndim - 1))) / qmax
  scale = jnp.where(scale > 0, scale, 1.0)
  q = jnp.clip(jnp.round(x / scale), -qmax, qmax).astype(jnp.int8)
  return {"int8": q, "scale": scale} if bits == 8 else {"int4": _pack4(q), "scale": scale}


def quantize(tree, bits: int):
  """The tree with every kernel and table stored in `bits` (16 = bf16, 8, 4)."""
  if bits not in BITS:
    raise ValueError(f"bits must be one of {BITS}, got {bits}")
  return jax.tree.map(lambda x: _quantize_leaf(x, bits), tree)


def _is_packed(q) -> bool:
  return isinstance(q, dict) and ("bf16" in q or ("scale" in q and ("int8" in q or "int4" in q)))


def dequantize(q, like):
  """The fp32 (`like`'s dtypes) tree of a `quantize`d one; `like` gives the shapes."""
  if _is_packed(q):
    if "bf16" in q:
      x = q["bf16"]
    else:
      v = q["int8"] if "int8" in q else _unpack4(q["int4"], like.shape[0])
      x = v.astype(jnp.float32) * q["scale"]
    return x.astype(like.dtype)
  if isinstance(like, dict):
    return {k: dequantize(q[k], like[k]) for k in like}
  return q


def nbytes(tree) -> int:
  return int(sum(np.dtype(x.dtype).itemsize * int(np.prod(x.shape)) for x in jax.tree.leaves(tree)))


def magnitude_mask(tree, sparsity: float):
  """Bool tree (True = kept): the `sparsity` fraction of all compressible weights with the
  smallest magnitude, ranked together across layers (global), are dropped."""
  leaves = [x for x in jax.tree.leaves(tree) if compressible(x)]
  flat = jnp.concatenate([jnp.abs(x.astype(jnp.float32)).ravel() for x in leaves])
  k = int(round(sparsity * flat.shape[0]))
  threshold = jnp.sort(flat)[min(k, flat.shape[0] - 1)]
  return jax.tree.map(lambda x: jnp.abs(x) >= threshold if compressible(x)
                      else jnp.ones(x.shape, bool), tree)


def apply_mask(tree, mask):
  return jax.tree.map(lambda x, m: jnp.where(m, x, jnp.zeros((), x.dtype)), tree, mask)


def sparsity_of(tree) -> float:
  """Fraction of exact zeros among the compressible weights."""
  leaves = [np.asarray(x) for x in jax.tree.leaves(tree) if compressible(x)]
  total = sum(x.size for x in leaves)
  return float(sum(int(np.sum(x == 0)) for x in leaves) / max(total, 1))
