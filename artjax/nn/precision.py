"""Mixed-precision matrix products shared by every model.

`Linear` is `nnx.Linear` with the `dot_general` below and no dtype promotion. With fp32
parameters (the default) it is exactly `nnx.Linear`. When the training step casts the
parameters to bf16 (`train.dtype=bf16`: fp32 master weights, bf16 compute), every Dense
product multiplies bf16 by bf16 with fp32 accumulation -- in the forward pass AND both
backward products -- and returns fp32, so bias adds, activations, normalisation and the
bias gradients' batch sums stay in fp32. Only the products (where the FLOPs are) run in
bf16.

Why this shape, measured with XLA:CPU (jaxlib 0.10) on an AVX512-BF16 CPU:
* a bf16 x bf16 -> fp32 dot of plain [m, k] x [k, n] layout runs on XLA's bf16 kernels
  (YNNPACK), about 2x fp32; a bf16-output dot, or one whose operand is a transpose folded
  into its dimension numbers (what autodiff produces for the backward products), is
  silently converted back to fp32 operands (no faster than fp32);
* bf16 bias gradients are summed by XLA with a slow precision-preserving reduce-window.
The custom VJP of `bf16_bmm` gives the backward products explicitly transposed operands, and the
fp32 outputs keep the elementwise work off bf16. On GPUs and TPUs the same code is the
usual bf16-with-fp32-accumulation policy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax.nnx.nn import linear as _init
from jax import lax

from artjax.nn import logical

_BF16 = jnp.bfloat16
_F32 = jnp.float32


def _t(a):
  # A physical transpose of the last two axes. XLA:CPU sends a bf16 dot whose operand is a
  # plain transpose back to fp32; through a size-1 axis the transpose stays a separate copy
  # and the product stays on the bf16 kernels.
  *lead, m, n = a.shape
  return jnp.swapaxes(a.reshape(*lead, m, n, 1), -3, -2).reshape(*lead, n, m)


def _bmm(a, b):
  """a [..., m, k] @ b [..., k, n] -> fp32, leading axes flattened to one batch axis (XLA:CPU
  runs 3-D bf16 batched products on its bf16 kernels; with more batch axes it converts the
  backward products' operands to fp32)."""
  lead = a.shape[:-2]
  if len(lead) <= 1:
    return jnp.matmul(a, b, preferred_element_type=_F32)
  y = jnp.matmul(a.reshape((-1,) + a.shape[-2:]), b.reshape((-1,) + b.shape[-2:]),
                 preferred_element_type=_F32)
  return y.reshape(lead + y.shape[-2:])


@jax.custom_vjp
def bf16_bmm(a, b):
  """Batched a [..., m, k] @ b [..., k, n] (same leading axes) with bf16 operands and fp32
  accumulation, fp32 result, in the forward and both backward products."""
  return _bmm(a.astype(_BF16), b.astype(_BF16))


def _bmm_fwd(a, b):
  ab, bb = a.astype(_BF16), b.astype(_BF16)
  return _bmm(ab, bb), (ab, bb, jnp.zeros((), a.dtype), jnp.zeros((), b.dtype))


def _bmm_bwd(res, g):
  ab, bb, a_like, b_like = res
  g = g.astype(_BF16)
  return _bmm(g, _t(bb)).astype(a_like.dtype), _bmm(_t(ab), g).astype(b_like.dtype)


bf16_bmm.defvjp(_bmm_fwd, _bmm_bwd)


def bf16_matmul(x, w):
  """x [..., k] @ w [k, n] with bf16 operands and fp32 accumulation; fp32 result (a Dense
  layer's product: `bf16_bmm` on x flattened to [rows, k])."""
  y = bf16_bmm(x.reshape(-1, x.shape[-1]), w)
  return y.reshape(x.shape[:-1] + (w.shape[-1],))


def _is_plain_matmul(lhs, rhs, dimension_numbers) -> bool:
  (lc, rc), (lb, rb) = dimension_numbers
  return (rhs.ndim == 2 and not lb and not rb and tuple(lc) == (lhs.ndim - 1,)
          and tuple(rc) == (0,))


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None,
                **kwargs):
  """`lax.dot_general`; if either operand is bf16, a plain matmul runs as `bf16_matmul`."""
  if _BF16 in (lhs.dtype, rhs.dtype):
    if _is_plain_matmul(lhs, rhs, dimension_numbers):
      return bf16_matmul(lhs, rhs)
    lhs, rhs = lhs.astype(_BF16), rhs.astype(_BF16)
    preferred_element_type = _F32
  return lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                         preferred_element_type=preferred_element_type, **kwargs)


def _keep_dtypes(args, /, *, dtype=None, inexact=True):
  """No promotion: `dot_general` decides the product's precision from its operands."""
  del dtype, inexact
  return args


def Linear(*args, axes=logical.DENSE, **kwargs):  # noqa: N802  (a layer constructor, like nnx.Linear)
  """`nnx.Linear` with the mixed-precision `dot_general` above; `axes` = the kernel's logical
  axis names [in, out] (the bias takes the output's)."""
  from flax import nnx
  kernel_init = kwargs.pop("kernel_init", _init.default_kernel_init)
  bias_init = kwargs.pop("bias_init", _init.default_bias_init)
  return nnx.Linear(*args, dot_general=dot_general, promote_dtype=_keep_dtypes,
                    kernel_init=logical.named(kernel_init, axes),
                    bias_init=logical.named(bias_init, axes[-1:]), **kwargs)


def Conv(*args, axes=logical.conv(0), **kwargs):  # noqa: N802
  """`nnx.Conv` with logical axis names on its kernel [kh, kw, in, out] and bias, computed by
  `artjax.nn.conv` (canonical forward and backward convolutions: fast on XLA:CPU anywhere)."""
  from flax import nnx

  from artjax.nn import conv
  kernel_init = kwargs.pop("kernel_init", _init.default_kernel_init)
  bias_init = kwargs.pop("bias_init", _init.default_bias_init)
  kwargs.setdefault("conv_general_dilated", conv.lax_compatible)
  return nnx.Conv(*args, kernel_init=logical.named(kernel_init, axes),
                  bias_init=logical.named(bias_init, axes[-1:]), **kwargs)


def Embed(*args, **kwargs):  # noqa: N802
  """`nnx.Embed` with logical axis names (vocab, embed) on its table."""
  from flax import nnx
  init = kwargs.pop("embedding_init", _init.default_embed_init)
  return nnx.Embed(*args, embedding_init=logical.named(init, logical.EMBED), **kwargs)
