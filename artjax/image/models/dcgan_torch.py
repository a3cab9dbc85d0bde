"""The generator of PyTorch's DCGAN tutorial (Radford et al. 2016 as `dcgan_faces_tutorial.py`
writes it), so that its checkpoints load into artjax (`run.py import`), sample, fine-tune,
export and serve like any artjax generator, and go back to PyTorch (`to_state_dict`).

The PyTorch layout, `main.N.*` of an `nn.Sequential`: ConvTranspose2d(nz, C0, 4, 1, 0) from
the 1x1 latent to 4x4, then ConvTranspose2d(C, C/2, 4, 2, 1) doubling the side, each followed
by BatchNorm2d and ReLU, the last one to the image channels followed by tanh (64 px: five
layers). BatchNorm runs with its stored statistics (PyTorch's eval mode, how a trained
generator samples), folded into a trainable per-channel scale and shift.

No transposed convolution reaches XLA: the 4x4 latent layer is a dense product, and each
stride-2 transposed convolution is computed exactly as a 3x3 convolution to 4x the channels
followed by depth-to-space (output pixel (2m + a, 2n + b) reads inputs m + dy - 1, n + dx - 1
with PyTorch's kernel tap (a + 3 - 2 dy, b + 3 - 2 dx), zero where that falls outside 0..3).
The parameters stay PyTorch's 4x4 kernels, so fine-tuning keeps the structure and the weights
map back one to one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from artjax.nn.conv import conv2d, depth_to_space

BN_EPS = 1e-5


def _subpixel_index():
  """(tap index into the flattened 4x4 kernel, validity) for [dy, dx, a, b]."""
  idx = np.zeros((3, 3, 2, 2), np.int32)
  ok = np.zeros((3, 3, 2, 2), bool)
  for dy in range(3):
    for dx in range(3):
      for a in range(2):
        for b in range(2):
          ky, kx = a + 3 - 2 * dy, b + 3 - 2 * dx
          if 0 <= ky <= 3 and 0 <= kx <= 3:
            idx[dy, dx, a, b], ok[dy, dx, a, b] = ky * 4 + kx, True
  return idx, ok


_IDX, _OK = _subpixel_index()


def conv_transpose_4s2(x, kernel):
  """PyTorch's ConvTranspose2d(k=4, s=2, p=1) of x [B, H, W, I] with `kernel` [4, 4, I, O]
  (PyTorch's [I, O, 4, 4] moved) -> [B, 2H, 2W, O], as a 3x3 convolution + depth-to-space."""
  i, o = kernel.shape[2:]
  taps = kernel.reshape(16, i, o)[_IDX.reshape(-1)].reshape(3, 3, 2, 2, i, o)
  taps = taps * jnp.asarray(_OK, kernel.dtype)[..., None, None]
  k3 = jnp.transpose(taps, (0, 1, 4, 2, 3, 5)).reshape(3, 3, i, 4 * o)   # (a, b, o) channels
  return depth_to_space(conv2d(x, k3, 1, "SAME"), 2)


class _Layer(nnx.Module):
  def __init__(self, cin: int, cout: int, norm: bool):
    self.kernel = nnx.Param(jnp.zeros((4, 4, cin, cout), jnp.float32))
    self.scale = nnx.Param(jnp.ones((cout,), jnp.float32)) if norm else None
    self.shift = nnx.Param(jnp.zeros((cout,), jnp.float32)) if norm else None


class TutorialGenerator(nnx.Module):
  """z [B, nz] -> images [B, 4*2^(n-1), same, nc] in [-1, 1]; `channels` = (nz, C0, ..., nc)."""
  pixel_range = (-1.0, 1.0)

  @staticmethod
  def to_torch(state: dict) -> dict:
    """Its pure state as a PyTorch state dict (the `run.py export --format=torch` capability)."""
    return to_state_dict(state)

  def __init__(self, channels, *, rngs: nnx.Rngs | None = None):
    self.channels = tuple(int(c) for c in channels)
    self.latent_dim = self.channels[0]
    n = len(self.channels) - 1
    side = 4 * 2 ** (n - 1)
    self.image_shape = (side, side, self.channels[-1])
    self.layers = nnx.List([_Layer(self.channels[i], self.channels[i + 1], i < n - 1)
                            for i in range(n)])
    if rngs is not None:   # DCGAN's initialisation N(0, 0.02) (a generator trained from scratch)
      for layer in self.layers:
        layer.kernel.value = 0.02 * jax.random.normal(rngs.params(), layer.kernel.shape)
    self.layer_order = tuple(f"layers.{i}" for i in range(n))

  def __call__(self, z, labels=None):
    del labels
    first = self.layers[0]
    k = first.kernel[...]                                  # [4, 4, nz, C0]
    h = jnp.einsum("bz,hwzc->bhwc", z.astype(k.dtype), k, preferred_element_type=jnp.float32)
    for i, layer in enumerate(self.layers):
      if i:
        h = conv_transpose_4s2(h, layer.kernel[...])
      if layer.scale is not None:
        h = jax.nn.relu(h * layer.scale[...] + layer.shift[...])
    return jnp.tanh(h)


def channels_of(state_dict: dict) -> tuple:
  """(nz, C0, ..., nc) of a tutorial generator's state dict; ValueError if it is not one."""
  convs = sorted((int(k.split(".")[1]), v.shape) for k, v in state_dict.items()
                 if k.startswith("main.") and k.endswith(".weight") and np.ndim(v) == 4)
  if not convs:
    raise ValueError("no main.N.weight ConvTranspose2d kernels (not a DCGAN-tutorial generator)")
  chans = [convs[0][1][0]]
  for _, shape in convs:
    if shape[2:] != (4, 4) or shape[0] != chans[-1]:
      raise ValueError(f"kernel {shape} does not continue a DCGAN-tutorial generator")
    chans.append(shape[1])
  if not 2 <= len(convs) <= 9:
    raise ValueError(f"{len(convs)} transposed convolutions; a DCGAN generator has 2 to 9")
  return tuple(int(c) for c in chans)


def from_state_dict(state_dict: dict) -> dict:
  """The pure state of `TutorialGenerator(channels_of(sd))` from a PyTorch state dict."""
  convs = sorted({int(k.split(".")[1]) for k, v in state_dict.items()
                  if k.startswith("main.") and k.endswith(".weight") and np.ndim(v) == 4})
  layers, used = {}, set()
  for i, n in enumerate(convs):
    w = np.asarray(state_dict[f"main.{n}.weight"], np.float32)       # [I, O, 4, 4]
    used.add(f"main.{n}.weight")
    layer = {"kernel": np.ascontiguousarray(np.transpose(w, (2, 3, 0, 1)))}
    if i < len(convs) - 1:
      bn = f"main.{n + 1}."
      g, b, mean, var = (np.asarray(state_dict[bn + k], np.float32)
                         for k in ("weight", "bias", "running_mean", "running_var"))
      used |= {bn + k for k in ("weight", "bias", "running_mean", "running_var",
                                "num_batches_tracked")}
      layer["scale"] = g / np.sqrt(var + BN_EPS)
      layer["shift"] = b - mean * layer["scale"]
    layers[i] = layer
  extra = sorted(set(state_dict) - used)
  if extra:
    raise ValueError(f"tensors a DCGAN-tutorial generator does not have: {', '.join(extra[:4])}")
  return {"layers": layers}


def to_state_dict(state: dict) -> dict:
  """A PyTorch state dict (numpy arrays) of the generator's pure state: BatchNorm as weight =
  scale, bias = shift, running mean 0, running variance 1 - eps (the same eval-mode map)."""
  layers = state["layers"]
  out, n = {}, 0
  for i in sorted(layers, key=int):
    layer = layers[i]
    out[f"main.{n}.weight"] = np.transpose(np.asarray(layer["kernel"]), (2, 3, 0, 1)).copy()
    if "scale" in layer and layer["scale"] is not None:
      c = np.asarray(layer["scale"]).shape[0]
      out[f"main.{n + 1}.weight"] = np.asarray(layer["scale"], np.float32)
      out[f"main.{n + 1}.bias"] = np.asarray(layer["shift"], np.float32)
      out[f"main.{n + 1}.running_mean"] = np.zeros(c, np.float32)
      out[f"main.{n + 1}.running_var"] = np.full(c, 1.0 - BN_EPS, np.float32)
      out[f"main.{n + 1}.num_batches_tracked"] = np.zeros((), np.int64)
      n += 3
    else:
      n += 2
  return out
