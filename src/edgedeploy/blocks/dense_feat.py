"""DenseFeatBlock: a strided conv whose features are reused by a cheap dense unit and concatenated (DenseNet-style).

Layout (Cout = out channels): ``s = ConvBNAct3x3/stride(Cin -> 3/4 Cout)``;
``d = ConvBNAct1x1(3/4 Cout -> 3/8 Cout)`` (bottleneck) then ``ConvBNAct1x1(-> 1/4 Cout)``; output ``cat(s, d)``.

The tutorial gives no layout; this is the DenseNet-B bottleneck layer (1x1 bottleneck, then the growth conv,
concatenated onto its input) after a strided conv, with the split that best fits its table (352x1280 input,
thop counting):

=========  ========================  ============================
row        tutorial (MACs / params)  ours (MACs / params)
=========  ========================  ============================
32 -> 64   1.764 G / 15.53 K         1.770 G / 15.536 K (+0.3%)
64 -> 128  7 G / 61.88 K             7.000 G / 61.792 K (-0.1%)
=========  ========================  ============================

A 3x3 growth conv (the DenseNet default) fits worse: with a 3/8 Cout strided conv and a 3x3 5/8 Cout growth conv
the rows are +0.9% off; with equal halves the block costs as much as the plain conv, which the table contradicts.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .conv_bn_act import ConvBNAct, check_channels


class DenseFeatBlock(nn.Module):
    """Strided conv to ``stem_ratio`` of out_ch, a bottlenecked dense unit for the rest, concatenated."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 2, stem_ratio: float = 0.75,
                 growth_kernel: int = 1, act: str | None = "relu") -> None:
        super().__init__()
        check_channels("DenseFeatBlock", in_ch=in_ch, out_ch=out_ch)
        stem_ch = int(round(out_ch * stem_ratio))
        growth = out_ch - stem_ch
        if not 0 < stem_ch < out_ch:
            raise ConfigError(f"DenseFeatBlock: stem_ratio={stem_ratio} leaves no channels for the stem or the dense "
                              f"unit at out_ch={out_ch}; use 0 < stem_ratio < 1 and out_ch >= 2")
        self.stem = ConvBNAct(in_ch, stem_ch, 3, stride, act=act)
        self.bottleneck = ConvBNAct(stem_ch, max(stem_ch // 2, 1), 1, act=act)
        self.growth = ConvBNAct(max(stem_ch // 2, 1), growth, growth_kernel, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        s = self.stem(x)
        return torch.cat([s, self.growth(self.bottleneck(s))], dim=1)
