"""The StyleGAN2-class model and step in idiomatic PyTorch eager: the peer of artjax's
stylegan task in benchmarks/conv_throughput.py. Same architecture as
artjax/image/models/stylegan.py (mapping with lr multiplier, w_avg; modulated/demodulated 3x3
convs as input/output scaling, noise, [1,3,3,1] upsampling, skip ToRGB; residual D with
minibatch std and a projection head), same channels, same step as artjax/tasks/stylegan.py
(G forward once; D on reals and detached fakes with lazy R1 every `r1_interval` steps; G
through the updated D with D frozen; style mixing; EMA G; w_avg), Adam(b1=0, b2=0.99).
Augmentation is off in both for this measurement (the benchmark sets it)."""

from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def lrelu(x):
  return F.leaky_relu(x, 0.2) * SQRT2


class EqLinear(nn.Module):
  def __init__(self, d_in, d_out, lr_mul=1.0, bias_init=0.0, bias=True):
    super().__init__()
    self.weight = nn.Parameter(torch.randn(d_out, d_in) / lr_mul)
    self.bias = nn.Parameter(torch.full((d_out,), bias_init / lr_mul)) if bias else None
    self.w_gain, self.b_gain = lr_mul / math.sqrt(d_in), lr_mul

  def forward(self, x):
    b = None if self.bias is None else self.bias * self.b_gain
    return F.linear(x, self.weight * self.w_gain, b)


def norm2(x):
  return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + 1e-8)


class Mapping(nn.Module):
  def __init__(self, z_dim, w_dim, layers, lr_mul, num_classes):
    super().__init__()
    self.embed = nn.Parameter(torch.randn(num_classes, w_dim)) if num_classes else None
    d_in = z_dim + (w_dim if num_classes else 0)
    self.fc = nn.ModuleList([EqLinear(d_in if i == 0 else w_dim, w_dim, lr_mul) for i in range(layers)])
    self.register_buffer("w_avg", torch.zeros(w_dim))

  def forward(self, z, labels=None):
    x = norm2(z)
    if self.embed is not None:
      x = torch.cat([x, norm2(self.embed[labels])], -1)
    for layer in self.fc:
      x = lrelu(layer(x))
    return x


def upsample(x):
  """2x with the [1, 3, 3, 1] filter, edge-replicated borders (NCHW)."""
  for dim in (2, 3):
    n = x.shape[dim]
    xp = torch.cat([x.narrow(dim, 0, 1), x, x.narrow(dim, n - 1, 1)], dim)
    mid = xp.narrow(dim, 1, n)
    even = 0.25 * xp.narrow(dim, 0, n) + 0.75 * mid
    odd = 0.75 * mid + 0.25 * xp.narrow(dim, 2, n)
    x = torch.stack([even, odd], dim + 1).flatten(dim, dim + 1)
  return x


class ModConv(nn.Module):
  def __init__(self, c_in, c_out, w_dim, up=False):
    super().__init__()
    self.affine = EqLinear(w_dim, c_in, bias_init=1.0)
    self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3))
    self.noise_strength = nn.Parameter(torch.zeros(()))
    self.bias = nn.Parameter(torch.zeros(c_out))
    self.up, self.gain = up, 1.0 / math.sqrt(9 * c_in)

  def forward(self, x, w, noise):
    s = self.affine(w)
    if self.up:
      x = upsample(x)
    k = self.weight * self.gain
    y = F.conv2d(x * s[:, :, None, None], k, padding=1)
    d = torch.rsqrt(s.square() @ k.square().sum((2, 3)).t() + 1e-8)
    y = y * d[:, :, None, None] + noise * self.noise_strength
    return lrelu(y + self.bias[None, :, None, None])


class ToRGB(nn.Module):
  def __init__(self, c_in, channels, w_dim):
    super().__init__()
    self.affine = EqLinear(w_dim, c_in, bias_init=1.0)
    self.weight = nn.Parameter(torch.randn(channels, c_in, 1, 1))
    self.bias = nn.Parameter(torch.zeros(channels))
    self.gain = 1.0 / math.sqrt(c_in)

  def forward(self, x, w):
    s = self.affine(w) * self.gain
    return F.conv2d(x * s[:, :, None, None], self.weight) + self.bias[None, :, None, None]


def channels(r, base, cmax):
  return max(1, min(base // r, cmax))


class Generator(nn.Module):
  def __init__(self, res, rgb, z_dim, w_dim, layers, lr_mul, base, cmax, num_classes):
    super().__init__()
    ch = lambda r: channels(r, base, cmax)  # noqa: E731
    self.z_dim = z_dim
    self.mapping = Mapping(z_dim, w_dim, layers, lr_mul, num_classes)
    self.const = nn.Parameter(torch.randn(ch(4), 4, 4))
    convs, rgbs = [ModConv(ch(4), ch(4), w_dim)], [ToRGB(ch(4), rgb, w_dim)]
    for lg in range(3, int(math.log2(res)) + 1):
      r = 2 ** lg
      convs += [ModConv(ch(r // 2), ch(r), w_dim, up=True), ModConv(ch(r), ch(r), w_dim)]
      rgbs.append(ToRGB(ch(r), rgb, w_dim))
    self.convs, self.torgbs = nn.ModuleList(convs), nn.ModuleList(rgbs)
    self.num_ws = len(convs) + 1
    self.sizes = [2 ** (2 + (i + 1) // 2) for i in range(len(convs))]

  def synthesis(self, ws):
    b = ws.shape[0]
    noise = [torch.randn(b, 1, s, s) for s in self.sizes]
    x = self.const[None].expand(b, -1, -1, -1)
    x = self.convs[0](x, ws[:, 0], noise[0])
    img = self.torgbs[0](x, ws[:, 1])
    for j in range(1, len(self.torgbs)):
      x = self.convs[2 * j - 1](x, ws[:, 2 * j - 1], noise[2 * j - 1])
      x = self.convs[2 * j](x, ws[:, 2 * j], noise[2 * j])
      img = upsample(img) + self.torgbs[j](x, ws[:, 2 * j + 1])
    return img


class EqConv(nn.Module):
  def __init__(self, c_in, c_out, size=3, bias=True, act=True):
    super().__init__()
    self.weight = nn.Parameter(torch.randn(c_out, c_in, size, size))
    self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
    self.act, self.pad, self.gain = act, size // 2, 1.0 / math.sqrt(size * size * c_in)

  def forward(self, x):
    y = F.conv2d(x, self.weight * self.gain, self.bias, padding=self.pad)
    return lrelu(y) if self.act else y


class DBlock(nn.Module):
  def __init__(self, c_in, c_out):
    super().__init__()
    self.conv0, self.conv1 = EqConv(c_in, c_in), EqConv(c_in, c_out)
    self.skip = EqConv(c_in, c_out, size=1, bias=False, act=False)

  def forward(self, x):
    y = self.conv1(F.avg_pool2d(self.conv0(x), 2))
    return (self.skip(F.avg_pool2d(x, 2)) + y) / SQRT2


class Discriminator(nn.Module):
  def __init__(self, res, rgb, base, cmax, num_classes, group=4):
    super().__init__()
    ch = lambda r: channels(r, base, cmax)  # noqa: E731
    top = int(math.log2(res))
    self.group = group
    self.fromrgb = EqConv(rgb, ch(res), size=1)
    self.blocks = nn.ModuleList([DBlock(ch(2 ** lg), ch(2 ** (lg - 1))) for lg in range(top, 2, -1)])
    c4 = ch(4)
    self.conv = EqConv(c4 + 1, c4)
    self.fc, self.out = EqLinear(16 * c4, c4), EqLinear(c4, 1)
    self.proj = nn.Parameter(torch.randn(num_classes, c4)) if num_classes else None

  def forward(self, x, labels=None):
    h = self.fromrgb(x)
    for block in self.blocks:
      h = block(h)
    b, c, hh, ww = h.shape
    g = math.gcd(b, self.group)
    std = h.reshape(b // g, g, c, hh, ww).var(1, unbiased=False).add(1e-8).sqrt().mean((1, 2, 3))
    h = torch.cat([h, std.repeat_interleave(g)[:, None, None, None].expand(b, 1, hh, ww)], 1)
    h = lrelu(self.fc(self.conv(h).flatten(1)))
    logit = self.out(h)[:, 0]
    if self.proj is not None:
      logit = logit + (self.proj[labels] * h).sum(-1) / math.sqrt(h.shape[-1])
    return logit


class TorchStyleGAN:
  """One training step per call of `run(steps)`, on device-resident reals."""

  def __init__(self, config, images_u8, labels, dtype="fp32", seed=0):
    torch.manual_seed(seed)
    m, g, o = config.model, config.gan, config.optim
    res, rgb = images_u8.shape[1], images_u8.shape[3]
    self.num_classes = int(labels.max()) + 1 if m.conditional else 0
    self.G = Generator(res, rgb, m.latent_dim, m.w_dim, m.mapping_layers, m.mapping_lr_mul,
                       m.channel_base, m.channel_max, self.num_classes)
    self.D = Discriminator(res, rgb, m.channel_base, m.channel_max, self.num_classes, m.mbstd_group)
    self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
    self.g_opt = torch.optim.Adam(self.G.parameters(), lr=o.lr, betas=(o.b1, o.b2), eps=1e-8)
    self.d_opt = torch.optim.Adam(self.D.parameters(), lr=o.d_lr or o.lr, betas=(o.b1, o.b2), eps=1e-8)
    self.reals = torch.from_numpy(images_u8).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    self.labels = torch.from_numpy(labels.astype("int64"))
    self.batch, self.gan, self.step_no = config.train.batch_size, g, 0
    self.autocast = dtype == "bf16"

  def _ws(self, z, z2, labels):
    w = self.G.mapping(z, labels)
    ws = w[:, None].expand(-1, self.G.num_ws, -1)
    if self.gan.style_mixing:
      cut = torch.randint(1, self.G.num_ws, (w.shape[0],))
      cut = torch.where(torch.rand(w.shape[0]) < self.gan.style_mixing, cut, self.G.num_ws)
      later = torch.arange(self.G.num_ws)[None, :, None] >= cut[:, None, None]
      ws = torch.where(later, self.G.mapping(z2, labels)[:, None], ws)
    return ws, w

  def step(self):
    idx = torch.randint(0, len(self.reals), (self.batch,))
    real, y = self.reals[idx], (self.labels[idx] if self.num_classes else None)
    z, z2 = torch.randn(self.batch, self.G.z_dim), torch.randn(self.batch, self.G.z_dim)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
      ws, w = self._ws(z, z2, y)
      fake = self.G.synthesis(ws).float()
      self.D.requires_grad_(True)
      do_r1 = self.step_no % self.gan.r1_interval == 0 and self.gan.r1_gamma > 0
      real_in = real.detach().requires_grad_(do_r1)
      real_logits = self.D(real_in, y)
      d_loss = F.softplus(-real_logits).mean() + F.softplus(self.D(fake.detach(), y)).mean()
      if do_r1:
        grad, = torch.autograd.grad(real_logits.sum(), real_in, create_graph=True)
        d_loss = d_loss + grad.square().sum((1, 2, 3)).mean() * (self.gan.r1_gamma / 2 * self.gan.r1_interval)
    self.d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    self.d_opt.step()
    self.D.requires_grad_(False)                       # D frozen in the G step
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
      g_loss = F.softplus(-self.D(fake, y)).mean()
    self.g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    self.g_opt.step()
    with torch.no_grad():
      self.G.mapping.w_avg.lerp_(w.detach().float().mean(0), 1.0 - self.gan.w_avg_decay)
      t = float(self.step_no)
      decay = min(self.gan.ema_decay, (1.0 + t) / (10.0 + t))
      for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
        pe.lerp_(p, 1.0 - decay)
      self.G_ema.mapping.w_avg.copy_(self.G.mapping.w_avg)
    self.step_no += 1
    return float(d_loss.detach()), float(g_loss.detach())

  def run(self, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
      self.step()
    return time.perf_counter() - t
