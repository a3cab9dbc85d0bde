"""artjax's pix2pix pair (artjax/image/models/unet.py: U-Net + PatchGAN) and its step
(artjax/tasks/translate.py) in idiomatic PyTorch eager, channels-last: the peer of
benchmarks/conv_throughput.py. Same layers and widths (4x4 stride-2 convs with instance norm
and LeakyReLU down to 2x2, nearest x2 + 3x3 conv with instance norm and ReLU up, skip
concatenation, tanh; PatchGAN on (source, image)), same step: G loss = l1_weight x L1 +
adv_weight x non-saturating loss through D, G update; D on (x, y) and (x, detached fake);
Adam. Shift and flip augmentation are off in both for the speed measurement."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn


def _widths(resolution, width, max_width):
  levels = max(1, resolution.bit_length() - 2)
  return [min(width * 2 ** i, max_width) for i in range(levels)]


class Down(nn.Module):
  def __init__(self, cin, cout, norm=True):
    super().__init__()
    self.conv = nn.Conv2d(cin, cout, 4, stride=2, padding=1)
    self.norm = nn.InstanceNorm2d(cout, affine=True, eps=1e-5) if norm else None

  def forward(self, x):
    y = self.conv(x)
    return F.leaky_relu(self.norm(y) if self.norm is not None else y, 0.2)


class Up(nn.Module):
  def __init__(self, cin, cout):
    super().__init__()
    self.conv = nn.Conv2d(cin, cout, 3, padding=1)
    self.norm = nn.InstanceNorm2d(cout, affine=True, eps=1e-5)

  def forward(self, x):
    return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))))


class UNet(nn.Module):
  def __init__(self, shape, width, max_width):
    super().__init__()
    h, _, c = shape
    ws = _widths(h, width, max_width)
    self.down = nn.ModuleList([Down(c if i == 0 else ws[i - 1], w, norm=0 < i < len(ws) - 1)
                               for i, w in enumerate(ws)])
    ups, cin = [], ws[-1]
    for i in range(len(ws) - 1, 0, -1):
      ups.append(Up(cin, ws[i - 1]))
      cin = 2 * ws[i - 1]
    self.up = nn.ModuleList(ups)
    self.final = Up(cin, width)
    self.out = nn.Conv2d(width, c, 3, padding=1)

  def forward(self, x):
    skips = []
    for layer in self.down:
      x = layer(x)
      skips.append(x)
    for layer, skip in zip(self.up, reversed(skips[:-1])):
      x = torch.cat([layer(x), skip], 1)
    return torch.tanh(self.out(self.final(x)))


class PatchD(nn.Module):
  def __init__(self, shape, width):
    super().__init__()
    c = 2 * shape[-1]
    self.a, self.b = Down(c, width, norm=False), Down(width, 2 * width)
    self.c = nn.Conv2d(2 * width, 4 * width, 3, padding=1)
    self.norm = nn.InstanceNorm2d(4 * width, affine=True, eps=1e-5)
    self.head = nn.Conv2d(4 * width, 1, 3, padding=1)

  def forward(self, source, image):
    x = self.b(self.a(torch.cat([source, image], 1)))
    return self.head(F.leaky_relu(self.norm(self.c(x)), 0.2))[:, 0]


class TorchPix2Pix:
  """`run(steps)` -> seconds for `steps` training steps on (source, target) uint8 pairs."""

  def __init__(self, config, source_u8, target_u8, dtype="fp32"):
    c = config
    shape = source_u8.shape[1:]
    torch.manual_seed(0)
    cl = torch.channels_last
    self.g = UNet(shape, c.model.width, c.model.max_width).to(memory_format=cl)
    self.d = PatchD(shape, c.model.d_width).to(memory_format=cl)
    o = c.optim
    self.g_opt = torch.optim.Adam(self.g.parameters(), lr=o.lr, betas=(o.b1, o.b2))
    self.d_opt = torch.optim.Adam(self.d.parameters(), lr=o.lr, betas=(o.b1, o.b2))
    to = lambda a: (torch.from_numpy(a).float() / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous(memory_format=cl)
    self.src, self.dst = to(source_u8), to(target_u8)
    self.batch, self.t = c.train.batch_size, c.translate
    self.autocast = dtype == "bf16"

  def step(self):
    idx = torch.randint(0, self.src.shape[0], (self.batch,))
    x, y = self.src[idx], self.dst[idx]
    with torch.autocast("cpu", torch.bfloat16, enabled=self.autocast):
      self.d.requires_grad_(False)
      fake = self.g(x)
      adv = F.softplus(-self.d(x, fake)).mean()
      loss = self.t.l1_weight * (fake - y).abs().mean() + self.t.adv_weight * adv
    self.g_opt.zero_grad(set_to_none=True)
    loss.backward()
    self.g_opt.step()
    self.d.requires_grad_(True)
    with torch.autocast("cpu", torch.bfloat16, enabled=self.autocast):
      fake = fake.detach()
      d_loss = F.softplus(-self.d(x, y)).mean() + F.softplus(self.d(x, fake)).mean()
    self.d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    self.d_opt.step()
    return loss, d_loss

  def run(self, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
      loss, d_loss = self.step()
    loss.item(), d_loss.item()
    return time.perf_counter() - t
