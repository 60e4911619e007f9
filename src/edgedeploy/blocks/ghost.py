"""GhostConv2d (GhostNet, Han et al. 2020): a primary conv makes half the maps, a cheap depthwise conv the rest.

We follow the GhostConv of YOLOv5/Ultralytics: primary ConvBNAct(k, stride) to ceil(out/2) channels, then a 5x5
depthwise ConvBNAct on those maps, concatenated. With k=3, stride 2 at the tutorial's 352x1280 input this gives
exactly its rows (thop counting): 32 -> 64: 1.157 G MACs / 10,144 params; 64 -> 128: 4.390 G / 38,720.
"""
from __future__ import annotations

import torch
from torch import nn

from .conv_bn_act import ConvBNAct, check_channels


class GhostConv2d(nn.Module):
    """Primary k x k conv to ceil(out/ratio) maps + depthwise ``cheap_kernel`` conv for the ghost maps, concatenated."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, ratio: int = 2,
                 cheap_kernel: int = 5, act: str | None = "relu") -> None:
        super().__init__()
        check_channels("GhostConv2d", in_ch=in_ch, out_ch=out_ch, ratio=ratio)
        self.out_ch = out_ch
        init_ch = -(-out_ch // ratio)
        self.primary = ConvBNAct(in_ch, init_ch, kernel_size, stride, act=act)
        self.cheap = ConvBNAct(init_ch, init_ch * (ratio - 1), cheap_kernel, 1, groups=init_ch, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.primary(x)
        return torch.cat([y, self.cheap(y)], dim=1)[:, : self.out_ch]
