"""A PyTorch twin of NVIDIA StyleGAN2-ADA's networks (our own code, written from reading
NVlabs/stylegan2-ada-pytorch `training/networks.py` and `torch_utils/ops`): the same class
names, attribute and parameter names, buffers and `_init_kwargs`, pickled the way NVIDIA's
`torch_utils.persistence` pickles them (each module as `_reconstruct_persistent_obj(meta)`
with the module's source text and its `__dict__`), so `run.py import` meets exactly what a
`network-snapshot-*.pkl` holds. The forward passes compute as NVIDIA's reference paths do
(grouped per-sample modulated convolution, `conv_transpose2d` + upfirdn2d for up-sampling,
filter + strided convolution for down-sampling, NCHW) -- a different route from artjax's, so
matching outputs prove the import and the maths, not one implementation twice.

    write_snapshot(path, resolution=32, c_dim=0, ...)  ->  (G, D, G_ema) as written
"""

from __future__ import annotations

import inspect
import pickle
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F


# --- the pickling machinery: modules named as NVIDIA's, registered for pickle's lookup -------

class EasyDict(dict):
  def __getattr__(self, name):
    try:
      return self[name]
    except KeyError:
      raise AttributeError(name)

  def __setattr__(self, name, value):
    self[name] = value


def _reconstruct_persistent_obj(meta):   # never called here: pickle writes it by name
  raise RuntimeError("the twin writes snapshots; it does not read them")


def _register(name, **attrs):
  mod = sys.modules.get(name) or types.ModuleType(name)
  for k, v in attrs.items():
    setattr(mod, k, v)
    if callable(v):
      v.__module__ = name
  sys.modules[name] = mod


_register("torch_utils")
_register("torch_utils.persistence", _reconstruct_persistent_obj=_reconstruct_persistent_obj)
_register("dnnlib")
_register("dnnlib.util", EasyDict=EasyDict)
EasyDict.__qualname__ = "EasyDict"


def persistent(cls):
  """As NVIDIA's persistence.persistent_class: remember init args; pickle as source + state."""
  class Decorated(cls):
    _orig_module_src = inspect.getsource(sys.modules[__name__])
    _orig_class_name = cls.__name__

    def __init__(self, *args, **kwargs):
      super().__init__(*args, **kwargs)
      self._init_args = args
      self._init_kwargs = EasyDict(kwargs)

    def __reduce__(self):
      fields = list(super().__reduce__())
      fields += [None] * max(3 - len(fields), 0)
      meta = dict(type="class", version=4, module_src=self._orig_module_src,
                  class_name=self._orig_class_name, state=fields[2])
      return (_reconstruct_persistent_obj, (meta,), None) + tuple(fields[3:])
  Decorated.__name__ = cls.__name__
  return Decorated


# --- the operations (NVIDIA's reference semantics) ------------------------------------------

def setup_filter(f=(1, 3, 3, 1)):
  f = torch.as_tensor(f, dtype=torch.float32)
  f = f.ger(f)
  return f / f.sum()


def upfirdn2d(x, f, up=1, down=1, padding=(0, 0, 0, 0), gain=1):
  b, c, h, w = x.shape
  x = x.reshape(b, c, h, 1, w, 1)
  x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(b, c, h * up, w * up)
  px0, px1, py0, py1 = padding
  x = F.pad(x, [px0, px1, py0, py1])
  f = (f * gain).flip([0, 1])[None, None].repeat(c, 1, 1, 1)
  return F.conv2d(x, f, groups=c)[:, :, ::down, ::down]


def bias_act(x, b, act="linear", gain=None, clamp=None):
  if b is not None:
    x = x + b.reshape(1, -1, *([1] * (x.ndim - 2)))
  if act == "lrelu":
    x = F.leaky_relu(x, 0.2)
  gain = (np.sqrt(2) if act == "lrelu" else 1) if gain is None else gain
  x = x * gain
  return x.clamp(-clamp, clamp) if clamp is not None else x


def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1):
  """conv2d_resample for the cases the networks use (k = 1 or 3; up or down 2)."""
  kh = w.shape[2]
  if up > 1:      # transposed conv at stride 2, then the filter (NVIDIA's up path, padding 1)
    if groups == 1:
      wt = w.transpose(0, 1)
    else:
      o = w.shape[0] // groups
      wt = w.reshape(groups, o, -1, kh, kh).transpose(1, 2).reshape(-1, o, kh, kh)
    x = F.conv_transpose2d(x, wt, stride=2, groups=groups)
    p = padding + 2 - (kh - 1)
    q = padding + 1 - (kh - 2)
    return upfirdn2d(x, f, padding=(p, q, p, q), gain=4)
  if down > 1 and kh == 1:
    x = upfirdn2d(x, f, down=2, padding=(1, 1, 1, 1))
    return F.conv2d(x, w, groups=groups)
  if down > 1:
    x = upfirdn2d(x, f, padding=(padding + 1, padding + 1, padding + 1, padding + 1))
    return F.conv2d(x, w, stride=2, groups=groups)
  return F.conv2d(x, w, padding=padding, groups=groups)


def modulated_conv2d(x, weight, styles, noise=None, up=1, padding=0, resample_filter=None,
                     demodulate=True):
  """The fused path NVIDIA's generator takes at inference: per-sample weights, one grouped
  convolution."""
  b = x.shape[0]
  o, i, kh, kw = weight.shape
  w = weight[None] * styles.reshape(b, 1, -1, 1, 1)
  if demodulate:
    w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(b, -1, 1, 1, 1)
  x = x.reshape(1, -1, *x.shape[2:])
  x = conv2d_resample(x, w.reshape(-1, i, kh, kw), resample_filter, up=up, padding=padding,
                      groups=b)
  x = x.reshape(b, -1, *x.shape[2:])
  return x + noise if noise is not None else x


def normalize_2nd_moment(x, eps=1e-8):
  return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


# --- the networks ------------------------------------------------------------------------

@persistent
class FullyConnectedLayer(torch.nn.Module):
  def __init__(self, in_features, out_features, bias=True, activation="linear",
               lr_multiplier=1, bias_init=0):
    super().__init__()
    self.activation = activation
    self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
    self.bias = (torch.nn.Parameter(torch.full([out_features], np.float32(bias_init)))
                 if bias else None)
    self.weight_gain = lr_multiplier / np.sqrt(in_features)
    self.bias_gain = lr_multiplier

  def forward(self, x):
    w = self.weight * self.weight_gain
    b = self.bias * self.bias_gain if self.bias is not None else None
    return bias_act(x.matmul(w.t()), b, act=self.activation)


@persistent
class Conv2dLayer(torch.nn.Module):
  def __init__(self, in_channels, out_channels, kernel_size, bias=True, activation="linear",
               up=1, down=1, resample_filter=(1, 3, 3, 1), conv_clamp=None,
               channels_last=False, trainable=True):
    super().__init__()
    self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
    self.register_buffer("resample_filter", setup_filter(resample_filter))
    self.padding = kernel_size // 2
    self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))
    self.act_gain = np.sqrt(2) if activation == "lrelu" else 1
    self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size,
                                                  kernel_size]))
    self.bias = torch.nn.Parameter(torch.zeros([out_channels])) if bias else None

  def forward(self, x, gain=1):
    x = conv2d_resample(x, self.weight * self.weight_gain, self.resample_filter, up=self.up,
                        down=self.down, padding=self.padding)
    clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
    return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


@persistent
class MappingNetwork(torch.nn.Module):
  def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, embed_features=None,
               layer_features=None, activation="lrelu", lr_multiplier=0.01, w_avg_beta=0.995):
    super().__init__()
    self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
    self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
    embed_features = (w_dim if embed_features is None else embed_features) if c_dim else 0
    layer_features = w_dim if layer_features is None else layer_features
    feats = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
    if c_dim > 0:
      self.embed = FullyConnectedLayer(c_dim, embed_features)
    for idx in range(num_layers):
      setattr(self, f"fc{idx}", FullyConnectedLayer(feats[idx], feats[idx + 1],
                                                    activation=activation,
                                                    lr_multiplier=lr_multiplier))
    if num_ws is not None and w_avg_beta is not None:
      self.register_buffer("w_avg", torch.zeros([w_dim]))

  def forward(self, z, c, truncation_psi=1):
    parts = []
    if self.z_dim > 0:
      parts.append(normalize_2nd_moment(z.to(torch.float32)))
    if self.c_dim > 0:
      parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
    x = torch.cat(parts, dim=1)
    for idx in range(self.num_layers):
      x = getattr(self, f"fc{idx}")(x)
    if self.num_ws is not None:
      x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
    if truncation_psi != 1:
      x = self.w_avg.lerp(x, truncation_psi)
    return x


@persistent
class SynthesisLayer(torch.nn.Module):
  def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=1,
               use_noise=True, activation="lrelu", resample_filter=(1, 3, 3, 1),
               conv_clamp=None, channels_last=False):
    super().__init__()
    self.resolution, self.up, self.use_noise = resolution, up, use_noise
    self.activation, self.conv_clamp = activation, conv_clamp
    self.register_buffer("resample_filter", setup_filter(resample_filter))
    self.padding = kernel_size // 2
    self.act_gain = np.sqrt(2)
    self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
    self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size,
                                                  kernel_size]))
    if use_noise:
      self.register_buffer("noise_const", torch.randn([resolution, resolution]))
      self.noise_strength = torch.nn.Parameter(torch.zeros([]))
    self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

  def forward(self, x, w, noise_mode="const"):
    styles = self.affine(w)
    noise = None
    if self.use_noise and noise_mode == "random":
      noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution]) * self.noise_strength
    if self.use_noise and noise_mode == "const":
      noise = self.noise_const * self.noise_strength
    x = modulated_conv2d(x, self.weight, styles, noise, up=self.up, padding=self.padding,
                         resample_filter=self.resample_filter)
    return bias_act(x, self.bias, act=self.activation, gain=self.act_gain,
                    clamp=self.conv_clamp)


@persistent
class ToRGBLayer(torch.nn.Module):
  def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None,
               channels_last=False):
    super().__init__()
    self.conv_clamp = conv_clamp
    self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
    self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size,
                                                  kernel_size]))
    self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
    self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))

  def forward(self, x, w):
    styles = self.affine(w) * self.weight_gain
    x = modulated_conv2d(x, self.weight, styles, demodulate=False)
    return bias_act(x, self.bias, clamp=self.conv_clamp)


@persistent
class SynthesisBlock(torch.nn.Module):
  def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last,
               architecture="skip", resample_filter=(1, 3, 3, 1), conv_clamp=None,
               use_fp16=False, fp16_channels_last=False, **layer_kwargs):
    super().__init__()
    self.in_channels, self.w_dim, self.resolution = in_channels, w_dim, resolution
    self.img_channels, self.is_last, self.architecture = img_channels, is_last, architecture
    self.use_fp16, self.channels_last = use_fp16, False
    self.register_buffer("resample_filter", setup_filter(resample_filter))
    self.num_conv, self.num_torgb = 0, 0
    if in_channels == 0:
      self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
    else:
      self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                  up=2, conv_clamp=conv_clamp, **layer_kwargs)
      self.num_conv += 1
    self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                conv_clamp=conv_clamp, **layer_kwargs)
    self.num_conv += 1
    self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
    self.num_torgb += 1

  def forward(self, x, img, ws, noise_mode="const"):
    w_iter = iter(ws.unbind(dim=1))
    if self.in_channels == 0:
      x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
      x = self.conv1(x, next(w_iter), noise_mode)
    else:
      x = self.conv0(x, next(w_iter), noise_mode)
      x = self.conv1(x, next(w_iter), noise_mode)
    if img is not None:
      img = upfirdn2d(img, self.resample_filter, up=2, padding=(2, 1, 2, 1), gain=4)
    y = self.torgb(x, next(w_iter))
    return x, (img + y if img is not None else y)


@persistent
class SynthesisNetwork(torch.nn.Module):
  def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512,
               num_fp16_res=0, **block_kwargs):
    super().__init__()
    self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
    self.img_resolution_log2 = int(np.log2(img_resolution))
    self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
    ch = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
    fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
    self.num_ws = 0
    for res in self.block_resolutions:
      block = SynthesisBlock(ch[res // 2] if res > 4 else 0, ch[res], w_dim=w_dim,
                             resolution=res, img_channels=img_channels,
                             is_last=res == img_resolution, use_fp16=res >= fp16_resolution,
                             **block_kwargs)
      self.num_ws += block.num_conv + (block.num_torgb if res == img_resolution else 0)
      setattr(self, f"b{res}", block)

  def forward(self, ws, noise_mode="const"):
    x = img = None
    w_idx = 0
    for res in self.block_resolutions:
      block = getattr(self, f"b{res}")
      x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb), noise_mode)
      w_idx += block.num_conv
    return img


@persistent
class Generator(torch.nn.Module):
  def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={},
               synthesis_kwargs={}):
    super().__init__()
    self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
    self.img_resolution, self.img_channels = img_resolution, img_channels
    self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution,
                                      img_channels=img_channels, **synthesis_kwargs)
    self.num_ws = self.synthesis.num_ws
    self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                  **mapping_kwargs)

  def forward(self, z, c, truncation_psi=1, noise_mode="const"):
    return self.synthesis(self.mapping(z, c, truncation_psi=truncation_psi), noise_mode)


@persistent
class DiscriminatorBlock(torch.nn.Module):
  def __init__(self, in_channels, tmp_channels, out_channels, resolution, img_channels,
               first_layer_idx, architecture="resnet", activation="lrelu",
               resample_filter=(1, 3, 3, 1), conv_clamp=None, use_fp16=False,
               fp16_channels_last=False, freeze_layers=0):
    super().__init__()
    self.in_channels, self.resolution, self.img_channels = in_channels, resolution, img_channels
    self.first_layer_idx, self.architecture = first_layer_idx, architecture
    self.use_fp16, self.channels_last = use_fp16, False
    self.register_buffer("resample_filter", setup_filter(resample_filter))
    self.num_layers = 0
    if in_channels == 0:
      self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1,
                                 activation=activation, conv_clamp=conv_clamp)
      self.num_layers += 1
    self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                             conv_clamp=conv_clamp)
    self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation,
                             down=2, conv_clamp=conv_clamp)
    self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2)
    self.num_layers += 3

  def forward(self, x, img):
    if self.in_channels == 0:
      x = self.fromrgb(img)
    y = self.skip(x, gain=np.sqrt(0.5))
    x = self.conv1(self.conv0(x), gain=np.sqrt(0.5))
    return y + x, None


@persistent
class MinibatchStdLayer(torch.nn.Module):
  def __init__(self, group_size, num_channels=1):
    super().__init__()
    self.group_size, self.num_channels = group_size, num_channels

  def forward(self, x):
    n, c, h, w = x.shape
    g = min(self.group_size, n) if self.group_size is not None else n
    f = self.num_channels
    y = x.reshape(g, -1, f, c // f, h, w)
    y = ((y - y.mean(dim=0)).square().mean(dim=0) + 1e-8).sqrt().mean(dim=[2, 3, 4])
    y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)


@persistent
class DiscriminatorEpilogue(torch.nn.Module):
  def __init__(self, in_channels, cmap_dim, resolution, img_channels, architecture="resnet",
               mbstd_group_size=4, mbstd_num_channels=1, activation="lrelu", conv_clamp=None):
    super().__init__()
    self.in_channels, self.cmap_dim, self.resolution = in_channels, cmap_dim, resolution
    self.img_channels, self.architecture = img_channels, architecture
    self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels)
    self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3,
                            activation=activation, conv_clamp=conv_clamp)
    self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels,
                                  activation=activation)
    self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

  def forward(self, x, img, cmap):
    x = self.out(self.fc(self.conv(self.mbstd(x)).flatten(1)))
    if self.cmap_dim > 0:
      x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
    return x


@persistent
class Discriminator(torch.nn.Module):
  def __init__(self, c_dim, img_resolution, img_channels, architecture="resnet",
               channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=None,
               cmap_dim=None, block_kwargs={}, mapping_kwargs={}, epilogue_kwargs={}):
    super().__init__()
    self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
    self.img_resolution_log2 = int(np.log2(img_resolution))
    self.block_resolutions = [2 ** i for i in range(self.img_resolution_log2, 2, -1)]
    ch = {r: min(channel_base // r, channel_max) for r in self.block_resolutions + [4]}
    cmap_dim = (ch[4] if cmap_dim is None else cmap_dim) if c_dim else 0
    common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
    idx = 0
    for res in self.block_resolutions:
      block = DiscriminatorBlock(ch[res] if res < img_resolution else 0, ch[res], ch[res // 2],
                                 resolution=res, first_layer_idx=idx, **block_kwargs, **common)
      setattr(self, f"b{res}", block)
      idx += block.num_layers
    if c_dim > 0:
      self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None,
                                    w_avg_beta=None, **mapping_kwargs)
    self.b4 = DiscriminatorEpilogue(ch[4], cmap_dim=cmap_dim, resolution=4, **epilogue_kwargs,
                                    **common)

  def forward(self, img, c):
    x = None
    for res in self.block_resolutions:
      x, img = getattr(self, f"b{res}")(x, img)
    cmap = self.mapping(None, c) if self.c_dim > 0 else None
    return self.b4(x, img, cmap)


def networks(resolution=32, c_dim=0, img_channels=3, z_dim=64, w_dim=64, channel_base=1024,
             channel_max=64, mapping_layers=2, mbstd_group=4, conv_clamp=256, seed=0):
  """(G, D, G_ema) with random weights; nonzero noise strengths, biases and w_avg so that every
  parameter matters to the output."""
  torch.manual_seed(seed)
  syn = EasyDict(channel_base=channel_base, channel_max=channel_max, num_fp16_res=4,
                 conv_clamp=conv_clamp)
  g = Generator(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=resolution,
                img_channels=img_channels, mapping_kwargs=EasyDict(num_layers=mapping_layers),
                synthesis_kwargs=syn)
  d = Discriminator(c_dim=c_dim, img_resolution=resolution, img_channels=img_channels,
                    channel_base=channel_base, channel_max=channel_max, num_fp16_res=4,
                    conv_clamp=conv_clamp, block_kwargs=EasyDict(),
                    mapping_kwargs=EasyDict(),
                    epilogue_kwargs=EasyDict(mbstd_group_size=mbstd_group))
  with torch.no_grad():
    for net in (g, d):
      for name, p in net.named_parameters():
        if name.endswith("noise_strength") or (name.endswith("bias") and "affine" not in name):
          p.copy_(0.1 * torch.randn_like(p))
    g.mapping.w_avg.copy_(0.5 * torch.randn_like(g.mapping.w_avg))
  g_ema = Generator(*g._init_args, **g._init_kwargs)
  g_ema.load_state_dict(g.state_dict())
  with torch.no_grad():
    for p in g_ema.parameters():
      p.add_(0.01 * torch.randn_like(p))
  return [m.eval().requires_grad_(False) for m in (g, d, g_ema)]


def write_snapshot(path, **kwargs):
  """A `network-snapshot-*.pkl` as NVIDIA's training loop writes it; returns (G, D, G_ema)."""
  g, d, g_ema = networks(**kwargs)
  data = dict(training_set_kwargs=dict(EasyDict(class_name="training.dataset.ImageFolderDataset",
                                                path="~/datasets/twin.zip", use_labels=False,
                                                resolution=g.img_resolution)),
              G=g, D=d, G_ema=g_ema, augment_pipe=None)
  with open(path, "wb") as f:
    pickle.dump(data, f)
  return g, d, g_ema
