"""The seed GAN written idiomatically in PyTorch eager: the peer for throughput benchmarks.

Correct loop (unlike the seed): D step on real and detached fake, then the
non-saturating G step through the updated D, reusing the same G(z) forward pass. The G step
freezes D's parameters (`requires_grad_(False)`), so its backward computes the gradient into
G only, like artjax's step (no D weight gradients). `compile=True` runs the networks through
`torch.compile` (inductor); channels-last does not apply (no convolutions).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn


def seed_models(image_dim: int, latent: int = 100, hidden: int = 256):
  g = nn.Sequential(nn.Linear(latent, hidden), nn.Sigmoid(), nn.Linear(hidden, image_dim), nn.Sigmoid())
  d = nn.Sequential(nn.Linear(image_dim, hidden), nn.Sigmoid(), nn.Linear(hidden, 1))
  return g, d


class TorchSeedGAN:
  def __init__(self, images_u8: np.ndarray, batch: int, latent: int = 100, lr: float = 2e-4,
               threads: int | None = None, seed: int = 0, dtype: str = "fp32",
               compile: bool = False):
    if threads:
      torch.set_num_threads(threads)
    torch.manual_seed(seed)
    self.data = torch.from_numpy(images_u8.reshape(len(images_u8), -1)).float() / 255.0
    self.batch, self.latent = batch, latent
    self.g, self.d = seed_models(self.data.shape[1], latent)
    self.g_fn, self.d_fn = ((torch.compile(self.g), torch.compile(self.d)) if compile
                            else (self.g, self.d))
    self.opt_g = torch.optim.Adam(self.g.parameters(), lr=lr)
    self.opt_d = torch.optim.Adam(self.d.parameters(), lr=lr)
    self.bce = nn.BCEWithLogitsLoss()   # == Sigmoid + BCELoss, numerically stable
    self.ones = torch.ones(batch, 1)
    self.zeros = torch.zeros(batch, 1)
    # bf16: torch's own mixed precision (autocast: bf16 matmuls, fp32 weights and losses)
    self.autocast = dtype == "bf16"

  def step(self):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
      return self._step()

  def _step(self):
    idx = torch.randint(0, self.data.shape[0], (self.batch,))
    real = self.data[idx]
    z = torch.randn(self.batch, self.latent)
    fake = self.g_fn(z)
    self.opt_d.zero_grad(set_to_none=True)
    d_loss = self.bce(self.d_fn(real), self.ones) + self.bce(self.d_fn(fake.detach()), self.zeros)
    d_loss.backward()
    self.opt_d.step()
    self.opt_g.zero_grad(set_to_none=True)
    self.d.requires_grad_(False)          # gradient into G only
    g_loss = self.bce(self.d_fn(fake), self.ones)
    g_loss.backward()
    self.d.requires_grad_(True)
    self.opt_g.step()
    return d_loss, g_loss

  def run(self, steps: int) -> float:
    """Seconds for `steps` steps (losses read back at the end, like artjax's dispatch)."""
    t = time.perf_counter()
    for _ in range(steps):
      d_loss, g_loss = self.step()
    d_loss.item(), g_loss.item()
    return time.perf_counter() - t
