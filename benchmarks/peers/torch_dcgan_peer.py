"""artjax's DCGAN (artjax/image/models/gan.py: ConvGenerator / ConvDiscriminator) and its GAN
step (artjax/tasks/gan.py) in idiomatic PyTorch eager, channels-last: the peer of
benchmarks/conv_throughput.py. Same layers and channels (nearest upsample + 3x3 conv stages
with pixel norm, 4x4 stride-2 discriminator convs, projection head), same step: G forward
once; D on reals and the detached fakes as one batch, non-saturating loss; G through the
updated D with D's parameters frozen (no D weight gradients); Adam(b1=0.5); EMA of G.
Augmentation is off in both for the speed measurement. `autocast` bf16 when asked."""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn


def _stages(h, w):
  n = 1
  while h % 2 ** (n + 1) == 0 and w % 2 ** (n + 1) == 0 and min(h, w) // 2 ** (n + 1) >= 4:
    n += 1
  return n


def _channels(width, n):
  return [width * min(2 ** (n - i), 8) for i in range(n + 1)]


def _pixel_norm(x):   # NCHW: normalise over channels
  return x * torch.rsqrt(x.square().mean(1, keepdim=True) + 1e-8)


class Generator(nn.Module):
  def __init__(self, shape, latent, width, num_classes):
    super().__init__()
    h, w, c = shape
    n = _stages(h, w)
    ch = _channels(width, n)
    self.base = (ch[0], h // 2 ** n, w // 2 ** n)
    self.embed = nn.Embedding(num_classes, latent) if num_classes else None
    self.fc = nn.Linear(latent * (2 if num_classes else 1), ch[0] * self.base[1] * self.base[2])
    self.convs = nn.ModuleList([nn.Conv2d(ch[i], ch[i + 1], 3, padding=1) for i in range(n)])
    self.final = nn.Conv2d(ch[n], ch[n], 3, padding=1)
    self.to_img = nn.Conv2d(ch[n], c, 3, padding=1)

  def forward(self, z, labels):
    h = z if self.embed is None else torch.cat([z, self.embed(labels)], -1)
    h = F.leaky_relu(self.fc(h), 0.2)
    h = h * torch.rsqrt(h.square().mean(-1, keepdim=True) + 1e-8)
    h = h.view(z.shape[0], self.base[1], self.base[2], self.base[0]).permute(0, 3, 1, 2)
    h = h.contiguous(memory_format=torch.channels_last)
    for conv in self.convs:
      h = _pixel_norm(F.leaky_relu(conv(F.interpolate(h, scale_factor=2, mode="nearest")), 0.2))
    h = _pixel_norm(F.leaky_relu(self.final(h), 0.2))
    return torch.tanh(self.to_img(h))


class Discriminator(nn.Module):
  def __init__(self, shape, width, num_classes):
    super().__init__()
    h, w, c = shape
    n = _stages(h, w)
    ch = _channels(width, n)[::-1]
    self.conv0 = nn.Conv2d(c, ch[0], 3, padding=1)
    self.downs = nn.ModuleList([nn.Conv2d(ch[i], ch[i + 1], 4, stride=2, padding=1)
                                for i in range(n)])
    self.fc = nn.Linear((h // 2 ** n) * (w // 2 ** n) * ch[n], 4 * width)
    self.out = nn.Linear(4 * width, 1)
    self.proj = nn.Embedding(num_classes, 4 * width) if num_classes else None

  def forward(self, x, labels):
    h = F.leaky_relu(self.conv0(x), 0.2)
    for conv in self.downs:
      h = F.leaky_relu(conv(h), 0.2)
    h = F.leaky_relu(self.fc(h.permute(0, 2, 3, 1).flatten(1)), 0.2)   # NHWC order, as artjax
    logit = self.out(h)[:, 0]
    if self.proj is not None:
      logit = logit + (self.proj(labels) * h).sum(-1)
    return logit


class TorchDCGAN:
  """`run(steps)` -> seconds for `steps` training steps (batches drawn from the images)."""

  def __init__(self, config, images_u8, labels, dtype="fp32"):
    c = config
    shape = images_u8.shape[1:]
    nc = int(labels.max()) + 1 if c.model.conditional else 0
    torch.manual_seed(0)
    self.g = Generator(shape, c.model.latent_dim, c.model.width, nc).to(memory_format=torch.channels_last)
    self.d = Discriminator(shape, c.model.width, nc).to(memory_format=torch.channels_last)
    self.ema = copy.deepcopy(self.g).requires_grad_(False)
    o = c.optim
    self.g_opt = torch.optim.Adam(self.g.parameters(), lr=o.lr, betas=(o.b1, o.b2))
    self.d_opt = torch.optim.Adam(self.d.parameters(), lr=o.d_lr or o.lr, betas=(o.b1, o.b2))
    self.images = (torch.from_numpy(images_u8).float() / 127.5 - 1.0).permute(0, 3, 1, 2)
    self.images = self.images.contiguous(memory_format=torch.channels_last)
    self.labels = torch.from_numpy(labels.astype("int64"))
    self.batch, self.latent, self.nc = c.train.batch_size, c.model.latent_dim, nc
    self.decay = c.gan.ema_decay
    self.autocast = dtype == "bf16"

  def step(self):
    b = self.batch
    idx = torch.randint(0, self.images.shape[0], (b,))
    real = self.images[idx]
    labels = self.labels[idx] if self.nc else None
    z = torch.randn(b, self.latent)
    with torch.autocast("cpu", torch.bfloat16, enabled=self.autocast):
      fake = self.g(z, labels)
      both = self.d(torch.cat([real, fake.detach()]),
                    None if labels is None else torch.cat([labels, labels]))
      d_loss = F.softplus(-both[:b]).mean() + F.softplus(both[b:]).mean()
    self.d_opt.zero_grad(set_to_none=True)
    d_loss.backward()
    self.d_opt.step()
    self.d.requires_grad_(False)
    with torch.autocast("cpu", torch.bfloat16, enabled=self.autocast):
      g_loss = F.softplus(-self.d(fake, labels)).mean()
    self.g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    self.g_opt.step()
    self.d.requires_grad_(True)
    with torch.no_grad():
      for e, p in zip(self.ema.parameters(), self.g.parameters()):
        e.lerp_(p, 1.0 - self.decay)
    return d_loss, g_loss

  def run(self, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
      d_loss, g_loss = self.step()
    d_loss.item(), g_loss.item()
    return time.perf_counter() - t
