"""One 2-D convolution that XLA runs on its fast kernels everywhere, forward and backward.

XLA:CPU (jaxlib 0.10) runs a convolution on its multithreaded Eigen/YNNPACK kernels only when
it is *canonical*: input [B, H, W, C], kernel [kh, kw, I, O], output [B, H', W', O], no input
(lhs) dilation. Its layout pass puts convolutions into that form in the entry computation
only; a non-canonical convolution inside a `lax.scan`/while body or a `lax.cond` branch -- and
autodiff's gradient convolutions are never canonical: the input gradient reads the kernel as
[kh, kw, O, I], the weight gradient contracts over the batch -- is emitted as XLA's naive
elemental loop (8-125x slower; `TF_CPP_VMODULE=thunk_emitter=2` logs each one as "Falling back
to unoptimized convolution"). A strided convolution's input gradient dilates its input, which
no fast kernel takes, at any level.

`conv2d` is therefore a custom VJP whose forward and both backward convolutions are canonical
stride-1 convolutions, with the transposes they need made explicit (copies XLA cannot fold
back into the convolution's dimension numbers); a stride-s convolution is the exact stride-1
convolution of the space-to-depth input with the kernel folded the same way. Being built from
itself, its gradient is again canonical, so second derivatives (R1) stay fast too. On GPUs
and TPUs the same program is an ordinary convolution plus cheap transposes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

_F32 = jnp.float32
_DN = ("NHWC", "HWIO", "NHWC")


def _copy_t(a, perm):
  """A transpose XLA keeps as a physical copy: routed through a size-1 axis, so the layout and
  algebraic passes cannot fold it into the consumer's dimension numbers."""
  y = jnp.transpose(a[..., None], tuple(perm) + (a.ndim,))
  return y.reshape(y.shape[:-1])


def _compute_dtype(x, k):
  return jnp.bfloat16 if jnp.bfloat16 in (x.dtype, k.dtype) else _F32


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv(x, k, pad):
  """Stride-1 'pad'-padded convolution, x [B, H, W, I], k [kh, kw, I, O] -> fp32 [B, H', W', O]."""
  dt = _compute_dtype(x, k)
  return lax.conv_general_dilated(x.astype(dt), k.astype(dt), (1, 1), pad, dimension_numbers=_DN,
                                  preferred_element_type=_F32)


def _conv_fwd(x, k, pad):
  return _conv(x, k, pad), (x, k)


def _conv_bwd(pad, res, g):
  x, k = res
  kh, kw = k.shape[:2]
  (pt, pb), (pl, pr) = pad
  # input gradient: the flipped kernel with I and O swapped, as a canonical [kh, kw, O, I] array
  k_t = _copy_t(k[::-1, ::-1], (0, 1, 3, 2))
  dx = _conv(g, k_t, ((kh - 1 - pt, kh - 1 - pb), (kw - 1 - pl, kw - 1 - pr)))
  return dx.astype(x.dtype), _weight_grad(x, g, pad, kh, kw).astype(k.dtype)


def _weight_grad(x, g, pad, kh, kw):
  """dL/dkernel [kh, kw, I, O] as matmuls over the B*H'*W' positions (as a canonical
  convolution -- channels as batch, the output gradient as a kernel spanning the whole output
  -- XLA:CPU is up to 5x slower at 32 px and 64 channels). With 16 or more input channels:
  per kernel tap, the output gradient transposed once [O, BHW] times the shifted input window
  [BHW, I]; with fewer (an RGB input layer): per kernel row, the kw shifted windows side by
  side, transposed, times the output gradient (1.4-1.6x and 3x faster where each is used)."""
  (pt, pb), (pl, pr) = pad
  b, ho, wo, o = g.shape
  cin = x.shape[-1]
  dt = _compute_dtype(x, g)
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0))).astype(dt)
  g2 = g.reshape(-1, o).astype(dt)
  if cin >= 16:
    gt = _copy_t(g2, (1, 0))
    taps = [jnp.matmul(gt, xp[:, dy:dy + ho, dx:dx + wo].reshape(-1, cin),
                       preferred_element_type=_F32) for dy in range(kh) for dx in range(kw)]
    return _copy_t(jnp.stack(taps).reshape(kh, kw, o, cin), (0, 1, 3, 2))
  rows = []
  for dy in range(kh):
    cols = jnp.concatenate([xp[:, dy:dy + ho, dx:dx + wo] for dx in range(kw)], -1)
    rows.append(jnp.matmul(_copy_t(cols.reshape(b * ho * wo, -1), (1, 0)), g2,
                           preferred_element_type=_F32).reshape(kw, cin, o))
  return jnp.stack(rows)


_conv.defvjp(_conv_fwd, _conv_bwd)


def space_to_depth(x, s: int):
  """[B, H, W, C] -> [B, H/s, W/s, s*s*C] ((dy, dx, c) order)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // s, s, w // s, s, c)
  return jnp.transpose(x, (0, 1, 3, 2, 4, 5)).reshape(b, h // s, w // s, s * s * c)


def depth_to_space(x, s: int):
  """[B, H, W, s*s*C] -> [B, s*H, s*W, C] (sub-pixel convolution's shuffle)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, s, s, c // (s * s))
  return jnp.transpose(x, (0, 1, 3, 2, 4, 5)).reshape(b, h * s, w * s, c // (s * s))


def same_padding(size: int, k: int, s: int) -> tuple[int, int]:
  """TF/Flax 'SAME' padding of one spatial axis (output ceil(size / s))."""
  out = -(-size // s)
  total = max((out - 1) * s + k - size, 0)
  return total // 2, total - total // 2


def conv2d(x, kernel, strides=(1, 1), padding="SAME"):
  """x [B, H, W, I] (*) kernel [kh, kw, I, O] -> fp32 [B, H', W', O]; `padding` "SAME",
  "VALID" or ((top, bottom), (left, right)); any stride (equal on both axes). bf16 operands
  give bf16 products with fp32 accumulation."""
  s = strides[0] if isinstance(strides, (tuple, list)) else int(strides)
  if isinstance(strides, (tuple, list)) and len(set(strides)) != 1:
    raise ValueError(f"conv2d: unequal strides {strides}")
  kh, kw = kernel.shape[:2]
  if isinstance(padding, str):
    if padding.upper() == "VALID":
      padding = ((0, 0), (0, 0))
    else:
      padding = (same_padding(x.shape[1], kh, s), same_padding(x.shape[2], kw, s))
  pad = tuple(tuple(int(v) for v in p) for p in padding)
  if s == 1 and all(0 <= a <= n - 1 and 0 <= b <= n - 1 for (a, b), n in zip(pad, (kh, kw))):
    return _conv(x, kernel, pad)
  if s == 1:   # padding beyond the kernel (or cropping): explicit, then a VALID convolution
    (pt, pb), (pl, pr) = pad
    x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (pt, pb, 0), (pl, pr, 0), (0, 0, 0)))
    return _conv(x, kernel, ((0, 0), (0, 0)))
  # stride s: pad, crop/pad to whole s x s cells, space-to-depth; the kernel padded to a
  # multiple of s and folded the same way: a stride-1 convolution computing the same sums
  (pt, pb), (pl, pr) = pad
  out_h = (x.shape[1] + pt + pb - kh) // s + 1
  out_w = (x.shape[2] + pl + pr - kw) // s + 1
  kh2, kw2 = -(-kh // s), -(-kw // s)
  need_h, need_w = (out_h + kh2 - 1) * s, (out_w + kw2 - 1) * s
  x = jnp.pad(x, ((0, 0), (pt, 0), (pl, 0), (0, 0)))
  x = x[:, :need_h, :need_w]
  x = jnp.pad(x, ((0, 0), (0, need_h - x.shape[1]), (0, need_w - x.shape[2]), (0, 0)))
  k = jnp.pad(kernel, ((0, kh2 * s - kh), (0, kw2 * s - kw), (0, 0), (0, 0)))
  k = k.reshape(kh2, s, kw2, s, k.shape[2], k.shape[3])
  k = jnp.transpose(k, (0, 2, 1, 3, 4, 5)).reshape(kh2, kw2, s * s * kernel.shape[2], -1)
  return _conv(space_to_depth(x, s), k, ((0, 0), (0, 0)))


def lax_compatible(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                   dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                   precision=None, preferred_element_type=None, out_sharding=None):
  """`conv2d` behind `lax.conv_general_dilated`'s signature (what `nnx.Conv` calls), for the
  2-D NHWC/HWIO convolutions without dilation or groups that artjax's layers use."""
  del precision, out_sharding
  plain = (lhs.ndim == 4 and not any(d != 1 for d in (lhs_dilation or (1, 1)))
           and not any(d != 1 for d in (rhs_dilation or (1, 1)))
           and feature_group_count == 1 and batch_group_count == 1
           and dimension_numbers is not None
           and tuple(dimension_numbers.lhs_spec) == (0, 3, 1, 2)
           and tuple(dimension_numbers.rhs_spec) == (3, 2, 0, 1)
           and tuple(dimension_numbers.out_spec) == (0, 3, 1, 2))
  if not plain:
    raise ValueError("artjax.nn.conv: only plain 2-D NHWC/HWIO convolutions are supported")
  y = conv2d(lhs, rhs, tuple(window_strides), padding)
  return y if preferred_element_type is None else y.astype(preferred_element_type)


def _dw_windows(xp, k, ho, wo):
  out = None
  for dy in range(k.shape[0]):
    for dx in range(k.shape[1]):
      term = xp[:, dy:dy + ho, dx:dx + wo] * k[dy, dx]
      out = term if out is None else out + term
  return out


@jax.custom_vjp
def _depthwise_valid(xp, k):
  """Stride-1 VALID depthwise convolution xp [B, H, W, C] (*) k [kh, kw, C] as the sum of
  kh*kw shifted windows times per-channel weights (elementwise work XLA fuses)."""
  return _dw_windows(xp, k, xp.shape[1] - k.shape[0] + 1, xp.shape[2] - k.shape[1] + 1)


def _depthwise_valid_fwd(xp, k):
  return _depthwise_valid(xp, k), (xp, k)


def _depthwise_valid_bwd(res, g):
  # the input gradient is the same kind of sum (the flipped kernel over the fully padded
  # output gradient) rather than kh*kw scatters; the kernel's is kh*kw reductions (dropped
  # by XLA when the kernel is frozen)
  xp, k = res
  kh, kw = k.shape[:2]
  gp = jnp.pad(g, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
  dxp = _dw_windows(gp, k[::-1, ::-1], xp.shape[1], xp.shape[2])
  ho, wo = g.shape[1:3]
  dk = jnp.stack([jnp.stack([jnp.sum(xp[:, dy:dy + ho, dx:dx + wo] * g, axis=(0, 1, 2))
                             for dx in range(kw)]) for dy in range(kh)])
  return dxp.astype(xp.dtype), dk.astype(k.dtype)


_depthwise_valid.defvjp(_depthwise_valid_fwd, _depthwise_valid_bwd)


def depthwise_conv2d(x, kernel, stride: int = 1, padding="SAME"):
  """Depthwise convolution x [B, H, W, C] (*) kernel [kh, kw, C], TF 'SAME' (or 'VALID')
  padding, stride 1 or more. A stride-s convolution is the sum, over the s*s phases of the
  padded input, of stride-1 convolutions with the kernel's matching taps; every piece and its
  gradient is shifted windows, never a convolution XLA could run on its slow loop."""
  kh, kw, _ = kernel.shape
  if padding == "SAME":
    (pt, pb), (pl, pr) = same_padding(x.shape[1], kh, stride), same_padding(x.shape[2], kw, stride)
  else:
    pt = pb = pl = pr = 0
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  if stride == 1:
    return _depthwise_valid(xp, kernel)
  ho = (xp.shape[1] - kh) // stride + 1
  wo = (xp.shape[2] - kw) // stride + 1
  out = None
  for p in range(min(stride, kh)):
    for q in range(min(stride, kw)):
      sub = kernel[p::stride, q::stride]
      phase = xp[:, p::stride, q::stride][:, :ho + sub.shape[0] - 1, :wo + sub.shape[1] - 1]
      term = _depthwise_valid(phase, sub)
      out = term if out is None else out + term
  return out
