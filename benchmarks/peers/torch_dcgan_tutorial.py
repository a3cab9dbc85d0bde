"""The generator of PyTorch's DCGAN tutorial (`dcgan_faces_tutorial.py`: ConvTranspose2d +
BatchNorm2d + ReLU stages, tanh), the twin `artjax.image.models.dcgan_torch` is checked
against (tests/slow/test_dcgan_import_slow.py)."""

from __future__ import annotations

from torch import nn


def generator(channels) -> nn.Sequential:
  """channels = (nz, C0, ..., nc): `main` as the tutorial names it, inside a module."""
  layers = []
  n = len(channels) - 1
  for i in range(n):
    stride, pad = (1, 0) if i == 0 else (2, 1)
    layers.append(nn.ConvTranspose2d(channels[i], channels[i + 1], 4, stride, pad, bias=False))
    if i < n - 1:
      layers += [nn.BatchNorm2d(channels[i + 1]), nn.ReLU(True)]
  layers.append(nn.Tanh())
  g = nn.Module()
  g.main = nn.Sequential(*layers)
  g.forward = lambda z: g.main(z[:, :, None, None])
  return g
