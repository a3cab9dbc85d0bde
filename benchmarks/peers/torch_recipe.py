"""The default digits recipe (configs/gan.py:digits) in idiomatic PyTorch eager: a
class-conditional MLP GAN (label embedding into G, projection D), non-saturating loss,
DiffAugment translation+cutout on real and fake in both updates, Adam(2e-4, b1=0.5), EMA
of G. The peer for benchmarks/time_to_quality.py."""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


class G(nn.Module):
  def __init__(self, latent, width, depth, classes, out_dim):
    super().__init__()
    self.embed = nn.Embedding(classes, latent)
    dims = [2 * latent] + [width] * depth
    self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
    self.out = nn.Linear(width, out_dim)

  def forward(self, z, y):
    h = torch.cat([z, self.embed(y)], 1)
    for layer in self.hidden:
      h = F.leaky_relu(layer(h), 0.2)
    return torch.tanh(self.out(h))


class D(nn.Module):
  def __init__(self, width, depth, classes, in_dim):
    super().__init__()
    dims = [in_dim] + [width] * depth
    self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
    self.out = nn.Linear(width, 1)
    self.proj = nn.Embedding(classes, width)

  def forward(self, x, y):
    h = x.flatten(1)
    for layer in self.hidden:
      h = F.leaky_relu(layer(h), 0.2)
    return self.out(h)[:, 0] + (self.proj(y) * h).sum(1)


def diff_augment(x, side):
  """translation (1/8 of the side, zero fill) then cutout (half the side), per image."""
  b = x.shape[0]
  img = x.view(b, 1, side, side)
  s = max(1, int(side * 0.125 + 0.5))
  pad = F.pad(img, (s, s, s, s))
  dy = torch.randint(0, 2 * s + 1, (b,))
  dx = torch.randint(0, 2 * s + 1, (b,))
  ar = torch.arange(side)
  rows = (dy[:, None] + ar[None, :])                       # [b, side]
  cols = (dx[:, None] + ar[None, :])
  img = pad[torch.arange(b)[:, None, None], 0, rows[:, :, None], cols[:, None, :]]
  c = max(1, int(side * 0.5 + 0.5))
  y0 = torch.randint(0, side + (1 - c % 2), (b, 1, 1)) - c // 2
  x0 = torch.randint(0, side + (1 - c % 2), (b, 1, 1)) - c // 2
  yy, xx = ar[None, :, None], ar[None, None, :]
  inside = (yy >= y0) & (yy < y0 + c) & (xx >= x0) & (xx < x0 + c)
  return (img * (~inside)).reshape(b, -1)


def flax_like_init(module):
  """The same initialisers as artjax's Flax modules (so the recipe, not the init, is compared):
  Linear: LeCun normal (truncated), zero bias; Embedding: normal with std 1/sqrt(features)."""
  for m in module.modules():
    if isinstance(m, nn.Linear):
      std = (1.0 / m.in_features) ** 0.5 / 0.87962566103423978   # truncated-normal correction
      nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
      nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
      nn.init.normal_(m.weight, std=(1.0 / m.embedding_dim) ** 0.5)


class TorchRecipe:
  def __init__(self, images_u8, labels, cfg, seed=0, threads=None):
    if threads:
      torch.set_num_threads(threads)
    torch.manual_seed(seed)
    self.side = images_u8.shape[1]
    self.data = torch.from_numpy(images_u8.reshape(len(images_u8), -1)).float() / 127.5 - 1
    self.labels = torch.from_numpy(np.asarray(labels)).long()
    m = cfg.model
    self.latent, self.batch, self.classes = m.latent_dim, cfg.train.batch_size, 10
    self.g = G(m.latent_dim, m.width, m.depth, 10, self.data.shape[1])
    self.d = D(m.width, m.depth, 10, self.data.shape[1])
    flax_like_init(self.g)
    flax_like_init(self.d)
    self.ema = copy.deepcopy(self.g).requires_grad_(False)
    self.ema_decay = cfg.gan.ema_decay
    o = cfg.optim
    self.opt_g = torch.optim.Adam(self.g.parameters(), lr=o.lr, betas=(o.b1, o.b2))
    self.opt_d = torch.optim.Adam(self.d.parameters(), lr=o.lr, betas=(o.b1, o.b2))
    self.t = 0

  def step(self):
    idx = torch.randint(0, self.data.shape[0], (self.batch,))
    real, y = self.data[idx], self.labels[idx]
    z = torch.randn(self.batch, self.latent)
    fake = self.g(z, y)
    self.opt_d.zero_grad(set_to_none=True)
    d_loss = (F.softplus(-self.d(diff_augment(real, self.side), y)).mean() +
              F.softplus(self.d(diff_augment(fake.detach(), self.side), y)).mean())
    d_loss.backward()
    self.opt_d.step()
    self.opt_g.zero_grad(set_to_none=True)
    self.d.requires_grad_(False)     # gradient into G only (no D weight gradients)
    g_loss = F.softplus(-self.d(diff_augment(fake, self.side), y)).mean()
    g_loss.backward()
    self.d.requires_grad_(True)
    self.opt_g.step()
    with torch.no_grad():
      decay = min(self.ema_decay, (1 + self.t) / (10 + self.t))
      for e, p in zip(self.ema.parameters(), self.g.parameters()):
        e.mul_(decay).add_(p, alpha=1 - decay)
    self.t += 1
    return d_loss, g_loss

  def run(self, steps):
    t = time.perf_counter()
    for _ in range(steps):
      d_loss, g_loss = self.step()
    d_loss.item()
    return time.perf_counter() - t

  @torch.no_grad()
  def sample(self, num, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(num, self.latent, generator=gen)
    y = torch.arange(num) % self.classes
    x = self.ema(z, y).numpy().reshape(num, self.side, self.side, 1)
    return np.clip(np.round((x + 1) * 127.5), 0, 255).astype(np.uint8), y.numpy()
