"""Space-to-depth (S2D) stem: rearrange each b x b patch into channels, then a cheap conv, instead of a strided conv.

Tutorial table (352x1280 input, thop counting) vs ours with the defaults (b=2, 1x1 conv + BN + ReLU):

=========  ========================  ========================
row        tutorial (MACs / params)  ours (MACs / params)
=========  ========================  ========================
1 -> 32    26.04 M / 150             28.84 M / 192
32 -> 64   1.08 G / 5.89 K           951.6 M / 8.32 K
=========  ========================  ========================

No published S2D design reproduces both rows (we searched S2D 2x/4x, 1x1/3x3/grouped/depthwise convs before
and after the rearrangement, with and without BN/bias; the best fit is still 9% off). The tutorial's numbers are
not self-consistent with one conv at the 176x640 output: 150 parameters for 1 -> 32 is fewer than the
4x32 projection weights plus the 2x32 BatchNorm parameters any S2D -> 32-channel conv needs (192), and
26.04 M is not a whole number of MACs per output position (231.2 at 176x640), so the counter must have seen part
of the block at another resolution or skipped its BatchNorm. We keep the YOLOv5 "Focus" / SPD-Conv choice
(space-to-depth 2x, then a non-strided conv): it keeps every input pixel (the tutorial's point) and is cheaper
than the strided 3x3 conv it replaces (28.8 M vs 46.9 M MACs; 951.6 M vs 2.105 G).
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, ShapeError
from .conv_bn_act import ConvBNAct, check_channels


class SpaceToDepth(nn.Module):
    """(N, C, H, W) -> (N, C*b*b, H/b, W/b); exports as ONNX SpaceToDepth-equivalent reshape/transpose."""

    def __init__(self, block_size: int = 2) -> None:
        super().__init__()
        if not isinstance(block_size, int) or block_size < 2:
            raise ConfigError(f"SpaceToDepth: block_size must be an int >= 2 (got {block_size!r})")
        self.block_size = block_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        b = self.block_size
        if not torch.jit.is_tracing() and (x.shape[-1] % b or x.shape[-2] % b):
            raise ShapeError(f"SpaceToDepth: input H x W = {x.shape[-2]} x {x.shape[-1]} must be divisible by "
                             f"block_size={b}; pad or resize the input")
        return nn.functional.pixel_unshuffle(x, b)


class SpaceToDepthStem(nn.Module):
    """Space-to-depth (b x b) then ConvBNAct(k, stride 1): replaces a stride-b conv stem with no pixel dropped."""

    def __init__(self, in_ch: int, out_ch: int, block_size: int = 2, kernel_size: int = 1,
                 act: str | None = "relu") -> None:
        super().__init__()
        check_channels("SpaceToDepthStem", in_ch=in_ch, out_ch=out_ch)
        self.s2d = SpaceToDepth(block_size)
        self.conv = ConvBNAct(in_ch * block_size * block_size, out_ch, kernel_size, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.conv(self.s2d(x))
