"""Inception-v3 as FID measures with it (Szegedy et al. 2016; the FID variant of Heusel et al.
2017 as pytorch-fid and StyleGAN2-ADA run it): a pure function of a parameter dict, no files
(the weights are loaded by `artjax.image.inception_weights`).

Layer names are torchvision's `Inception3` names (`Conv2d_1a_3x3`, `Mixed_5b.branch1x1`, ...);
each `BasicConv2d` (conv without bias, BatchNorm with eps 1e-3, ReLU) is one entry
{"kernel" [kh, kw, in, out], "scale" [out], "shift" [out]}, BatchNorm folded in at load time.
The FID blocks differ from torchvision's in their pooling branches: average pools do not count
padding, and the last block (Mixed_7c) max-pools. Input: float images [B, H, W, 3] in [0, 1],
resized to 299x299 bilinearly without antialiasing (torch's `F.interpolate(...,
align_corners=False)`), mapped to [-1, 1]. Output: the 2048-d pool features and, with the
`fc` entry, the 1008 logits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

SIZE = 299
BN_EPS = 1e-3

# Every BasicConv2d: name -> (in, out, (kh, kw), stride, (ph, pw)).
_STEM = {"Conv2d_1a_3x3": (3, 32, (3, 3), 2, (0, 0)), "Conv2d_2a_3x3": (32, 32, (3, 3), 1, (0, 0)),
         "Conv2d_2b_3x3": (32, 64, (3, 3), 1, (1, 1)), "Conv2d_3b_1x1": (64, 80, (1, 1), 1, (0, 0)),
         "Conv2d_4a_3x3": (80, 192, (3, 3), 1, (0, 0))}
# (block name, kind, in channels, pool features | c7 | -)
BLOCKS = (("Mixed_5b", "A", 192, 32), ("Mixed_5c", "A", 256, 64), ("Mixed_5d", "A", 288, 64),
          ("Mixed_6a", "B", 288, 0), ("Mixed_6b", "C", 768, 128), ("Mixed_6c", "C", 768, 160),
          ("Mixed_6d", "C", 768, 160), ("Mixed_6e", "C", 768, 192), ("Mixed_7a", "D", 768, 0),
          ("Mixed_7b", "E", 1280, 0), ("Mixed_7c", "E", 2048, 0))
FEATURES = 2048
LOGITS = 1008


def _a(c, pf):
  return {"branch1x1": (c, 64, (1, 1), 1, (0, 0)), "branch5x5_1": (c, 48, (1, 1), 1, (0, 0)),
          "branch5x5_2": (48, 64, (5, 5), 1, (2, 2)), "branch3x3dbl_1": (c, 64, (1, 1), 1, (0, 0)),
          "branch3x3dbl_2": (64, 96, (3, 3), 1, (1, 1)), "branch3x3dbl_3": (96, 96, (3, 3), 1, (1, 1)),
          "branch_pool": (c, pf, (1, 1), 1, (0, 0))}


def _b(c, _):
  return {"branch3x3": (c, 384, (3, 3), 2, (0, 0)), "branch3x3dbl_1": (c, 64, (1, 1), 1, (0, 0)),
          "branch3x3dbl_2": (64, 96, (3, 3), 1, (1, 1)), "branch3x3dbl_3": (96, 96, (3, 3), 2, (0, 0))}


def _c(c, c7):
  r, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
  return {"branch1x1": (c, 192, (1, 1), 1, (0, 0)), "branch7x7_1": (c, c7, (1, 1), 1, (0, 0)),
          "branch7x7_2": (c7, c7, r[0], 1, r[1]), "branch7x7_3": (c7, 192, col[0], 1, col[1]),
          "branch7x7dbl_1": (c, c7, (1, 1), 1, (0, 0)), "branch7x7dbl_2": (c7, c7, col[0], 1, col[1]),
          "branch7x7dbl_3": (c7, c7, r[0], 1, r[1]), "branch7x7dbl_4": (c7, c7, col[0], 1, col[1]),
          "branch7x7dbl_5": (c7, 192, r[0], 1, r[1]), "branch_pool": (c, 192, (1, 1), 1, (0, 0))}


def _d(c, _):
  return {"branch3x3_1": (c, 192, (1, 1), 1, (0, 0)), "branch3x3_2": (192, 320, (3, 3), 2, (0, 0)),
          "branch7x7x3_1": (c, 192, (1, 1), 1, (0, 0)), "branch7x7x3_2": (192, 192, (1, 7), 1, (0, 3)),
          "branch7x7x3_3": (192, 192, (7, 1), 1, (3, 0)), "branch7x7x3_4": (192, 192, (3, 3), 2, (0, 0))}


def _e(c, _):
  return {"branch1x1": (c, 320, (1, 1), 1, (0, 0)), "branch3x3_1": (c, 384, (1, 1), 1, (0, 0)),
          "branch3x3_2a": (384, 384, (1, 3), 1, (0, 1)), "branch3x3_2b": (384, 384, (3, 1), 1, (1, 0)),
          "branch3x3dbl_1": (c, 448, (1, 1), 1, (0, 0)), "branch3x3dbl_2": (448, 384, (3, 3), 1, (1, 1)),
          "branch3x3dbl_3a": (384, 384, (1, 3), 1, (0, 1)), "branch3x3dbl_3b": (384, 384, (3, 1), 1, (1, 0)),
          "branch_pool": (c, 192, (1, 1), 1, (0, 0))}


_KIND = {"A": _a, "B": _b, "C": _c, "D": _d, "E": _e}


def conv_specs() -> dict:
  """name -> (in, out, (kh, kw), stride, (ph, pw)) of every BasicConv2d, in network order."""
  out = dict(_STEM)
  for name, kind, c, extra in BLOCKS:
    out.update({f"{name}.{k}": v for k, v in _KIND[kind](c, extra).items()})
  return out


SPECS = conv_specs()


def _conv(params, name, x):
  _, _, _, stride, (ph, pw) = SPECS[name]
  p = params[name]
  y = lax.conv_general_dilated(x, p["kernel"], (stride, stride), ((ph, ph), (pw, pw)),
                               dimension_numbers=("NHWC", "HWIO", "NHWC"),
                               precision=lax.Precision.HIGHEST)
  return jax.nn.relu(y * p["scale"] + p["shift"])


def _max_pool(x, k=3, s=2, pad=0):
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, k, k, 1), (1, s, s, 1),
                           ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def _avg_pool_no_pad(x):
  """3x3, stride 1, padding 1, padded cells not counted (count_include_pad=False)."""
  pad = ((0, 0), (1, 1), (1, 1), (0, 0))
  total = lax.reduce_window(x, 0.0, lax.add, (1, 3, 3, 1), (1, 1, 1, 1), pad)
  count = lax.reduce_window(jnp.ones(x.shape[1:3] + (1,), x.dtype)[None], 0.0, lax.add,
                            (1, 3, 3, 1), (1, 1, 1, 1), pad)
  return total / count


def _block(params, name, kind, x):
  c = lambda branch, y: _conv(params, f"{name}.{branch}", y)  # noqa: E731
  if kind == "A":
    return [c("branch1x1", x), c("branch5x5_2", c("branch5x5_1", x)),
            c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x))),
            c("branch_pool", _avg_pool_no_pad(x))]
  if kind == "B":
    return [c("branch3x3", x), c("branch3x3dbl_3", c("branch3x3dbl_2", c("branch3x3dbl_1", x))),
            _max_pool(x)]
  if kind == "C":
    b7 = c("branch7x7_3", c("branch7x7_2", c("branch7x7_1", x)))
    d7 = x
    for i in range(1, 6):
      d7 = c(f"branch7x7dbl_{i}", d7)
    return [c("branch1x1", x), b7, d7, c("branch_pool", _avg_pool_no_pad(x))]
  if kind == "D":
    b7 = x
    for i in range(1, 5):
      b7 = c(f"branch7x7x3_{i}", b7)
    return [c("branch3x3_2", c("branch3x3_1", x)), b7, _max_pool(x)]
  b3 = c("branch3x3_1", x)
  d3 = c("branch3x3dbl_2", c("branch3x3dbl_1", x))
  pool = _max_pool(x, 3, 1, 1) if name == "Mixed_7c" else _avg_pool_no_pad(x)
  return [c("branch1x1", x), c("branch3x3_2a", b3), c("branch3x3_2b", b3),
          c("branch3x3dbl_3a", d3), c("branch3x3dbl_3b", d3), c("branch_pool", pool)]


def resize(images):
  """[B, H, W, 3] in [0, 1] -> [B, 299, 299, 3] in [-1, 1] (bilinear, half-pixel centres, no
  antialiasing: torch's F.interpolate(mode="bilinear", align_corners=False))."""
  x = jnp.asarray(images, jnp.float32)
  if x.shape[1:3] != (SIZE, SIZE):
    x = jax.image.resize(x, (x.shape[0], SIZE, SIZE, x.shape[3]), "bilinear", antialias=False)
  return 2.0 * x - 1.0


def apply(params: dict, images, logits: bool = False):
  """Pool features [B, 2048] (and logits [B, 1008] with `logits` and an `fc` entry)."""
  x = resize(images)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
    x = _conv(params, name, x)
  x = _max_pool(x)
  x = _conv(params, "Conv2d_4a_3x3", _conv(params, "Conv2d_3b_1x1", x))
  x = _max_pool(x)
  for name, kind, _, _ in BLOCKS:
    x = jnp.concatenate(_block(params, name, kind, x), axis=-1)
  feats = jnp.mean(x, axis=(1, 2))
  if not logits:
    return feats
  return feats, feats @ params["fc"]["kernel"] + params["fc"]["bias"]


def init(seed: int = 0) -> dict:
  """Random weights of the right shapes (tests, benchmarks): He-normal kernels, unit BN."""
  key = jax.random.PRNGKey(seed)
  params = {}
  for i, (name, (cin, cout, (kh, kw), _, _)) in enumerate(SPECS.items()):
    k = jax.random.normal(jax.random.fold_in(key, i), (kh, kw, cin, cout))
    params[name] = {"kernel": k * (2.0 / (kh * kw * cin)) ** 0.5,
                    "scale": jnp.ones((cout,)), "shift": jnp.zeros((cout,))}
  params["fc"] = {"kernel": jnp.zeros((FEATURES, LOGITS)), "bias": jnp.zeros((LOGITS,))}
  return params
