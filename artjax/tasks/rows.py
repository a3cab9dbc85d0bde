"""Rows of a normal draw without drawing the others.

`normal_rows(seeds, rows, width)[r]` equals `jax.random.normal(jax.random.key(seeds[r]),
(n, width))[rows[r]]` bit for bit, for any n > rows[r]: with jax's partitionable threefry
(the default, `jax_threefry_partitionable`), element i of a draw is the threefry hash of
counter i, turned into a float by an elementwise map that this function repeats. It lets a
service merge requests with different seeds into one call and still return exactly
`run.py sample`'s images (tests/test_deploy.py checks the equality against jax.random).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.random import threefry2x32_p


def normal_rows(seeds, rows, width: int):
  """float32 [B, width]: row rows[b] of a standard normal draw with key(seeds[b])."""
  if not jax.config.jax_threefry_partitionable:
    raise RuntimeError("normal_rows needs jax_threefry_partitionable=True (jax's default)")
  kd = jax.vmap(lambda s: jax.random.key_data(jax.random.key(s)))(seeds)          # [B, 2]
  counter = (rows.astype(jnp.uint32)[:, None] * jnp.uint32(width)
             + jnp.arange(width, dtype=jnp.uint32))                                 # < 2**32
  k1 = jnp.broadcast_to(kd[:, :1], counter.shape)
  k2 = jnp.broadcast_to(kd[:, 1:], counter.shape)
  b1, b2 = threefry2x32_p.bind(k1, k2, jnp.zeros_like(counter), counter)
  bits = lax.shift_right_logical(b1 ^ b2, jnp.uint32(32 - 23)) | jnp.uint32(0x3F800000)
  floats = lax.bitcast_convert_type(bits, jnp.float32) - jnp.float32(1)            # [0, 1)
  lo = jnp.float32(np.nextafter(np.float32(-1), np.float32(0)))
  u = lax.max(lo, floats * (jnp.float32(1) - lo) + lo)                              # (-1, 1)
  return jnp.float32(np.sqrt(2)) * lax.erf_inv(u)
