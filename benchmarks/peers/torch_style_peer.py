"""The PyTorch peer of artjax's style-transfer optimisation: the same random multi-scale feature
network (the very same filters, copied from artjax's numpy init), the same moment losses, Adam
on the pixels -- written as ordinary good PyTorch (conv2d with reflect padding, bmm Grams,
no_grad targets), optionally channels-last and/or through `torch.compile` (inductor; the loss,
its backward included, is one compiled graph). Used by benchmarks/style.py for iterations/s side
by side."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_BINOMIAL = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8.0


def downsample(x):
  c = x.shape[1]
  x = F.pad(x, (1, 1, 1, 1), mode="reflect")
  k = (_BINOMIAL[:, None] * _BINOMIAL[None, :]).to(x)[None, None].repeat(c, 1, 1, 1)
  return F.conv2d(x, k, stride=2, groups=c)


class Features:
  """outputs: ((size, maps, level), ...); params: artjax's numpy dict (f{i}: kernel HWIO, bias)."""

  def __init__(self, outputs, params, content, channels_last=False):
    self.outputs, self.content = outputs, content
    self.w = [torch.from_numpy(np.ascontiguousarray(np.transpose(params[f"f{i}"]["kernel"], (3, 2, 0, 1))))
              for i in range(len(outputs))]
    self.b = [torch.from_numpy(params[f"f{i}"]["bias"]) for i in range(len(outputs))]
    self.mean = torch.full((1, 3, 1, 1), 0.5)
    self.channels_last = channels_last
    if channels_last:
      self.w = [w.contiguous(memory_format=torch.channels_last) for w in self.w]

  def __call__(self, x):
    x = (x - self.mean) / 0.5
    pyramid = [x]
    for _ in range(max(l for _, _, l in self.outputs)):
      pyramid.append(downsample(pyramid[-1]))
    outs = []
    for (size, _, level), w, b in zip(self.outputs, self.w, self.b):
      lo, hi = (size - 1) // 2, size // 2
      xi = F.pad(pyramid[level], (lo, hi, lo, hi), mode="reflect")
      if self.channels_last:
        xi = xi.contiguous(memory_format=torch.channels_last)
      outs.append(F.relu(F.conv2d(xi, w, b)))
    return outs


def moments(f):
  b, c, h, w = f.shape
  flat = f.reshape(b, c, h * w)
  return flat.mean(-1), torch.bmm(flat, flat.transpose(1, 2)) / (h * w)


def _rel(x, t):
  return ((x - t) ** 2).sum() / (t ** 2).sum().clamp_min(1e-12)


class Stylizer:
  """Adam on the pixels of one image with the artjax loss (style_weight * style + content)."""

  def __init__(self, feats: Features, content, style, style_weight=2.0, lr=0.02, compile=False):
    self.f, self.sw, self.lr = feats, style_weight, lr
    self.loss_fn = torch.compile(self.loss) if compile else self.loss
    with torch.no_grad():
      self.targets = [moments(o) for o in feats(style)]
      self.c_feats = [o for i, o in enumerate(feats(content)) if i in feats.content]
    self.x = content.clone().requires_grad_(True)
    self.opt = torch.optim.Adam([self.x], lr=lr)

  def loss(self):
    outs = self.f(self.x)
    st = []
    for (tm, ts), o in zip(self.targets, outs):
      m, s = moments(o)
      cov, tcov = s - m[:, :, None] * m[:, None, :], ts - tm[:, :, None] * tm[:, None, :]
      st.append(_rel(cov, tcov) + _rel(m, tm))
    co = [_rel(outs[i], c) for i, c in zip(self.f.content, self.c_feats)]
    return self.sw * torch.stack(st).mean() + torch.stack(co).mean()

  def step(self, n=1):
    for _ in range(n):
      self.opt.zero_grad(set_to_none=True)
      loss = self.loss_fn()
      loss.backward()
      self.opt.step()
      with torch.no_grad():
        self.x.clamp_(-0.5, 1.5)
    return float(loss.detach())


def to_torch(image_hwc):
  return torch.from_numpy(np.ascontiguousarray(np.transpose(image_hwc, (2, 0, 1))))[None].float()


class TransformNet(torch.nn.Module):
  """artjax.image.models.transform.TransformNet in PyTorch (random weights: speed only)."""

  def __init__(self, width=16, blocks=3, edge=9):
    super().__init__()
    w = width

    def cn(cin, cout, k, stride=1, relu=True):
      layers = [torch.nn.ReflectionPad2d(k // 2), torch.nn.Conv2d(cin, cout, k, stride),
                torch.nn.InstanceNorm2d(cout, affine=True)]
      return torch.nn.Sequential(*layers, *([torch.nn.ReLU()] if relu else []))
    self.down = torch.nn.Sequential(cn(3, w, edge), cn(w, 2 * w, 3, 2), cn(2 * w, 4 * w, 3, 2))
    self.res = torch.nn.ModuleList([torch.nn.Sequential(cn(4 * w, 4 * w, 3), cn(4 * w, 4 * w, 3, relu=False))
                                    for _ in range(blocks)])
    self.up = torch.nn.ModuleList([cn(4 * w, 2 * w, 3), cn(2 * w, w, 3)])
    self.out = torch.nn.Sequential(torch.nn.ReflectionPad2d(edge // 2), torch.nn.Conv2d(w, 3, edge))

  def forward(self, x):
    x = self.down(x * 2 - 1)
    for r in self.res:
      x = x + r(x)
    for u in self.up:
      x = u(F.interpolate(x, scale_factor=2, mode="nearest"))
    return torch.sigmoid(self.out(x))
