"""PixelShuffleUpsample: conv to C*r*r channels then pixel shuffle (depth-to-space), replacing ConvTranspose2d."""
from __future__ import annotations

import torch
from torch import nn

from .conv_bn_act import check_channels, make_act


class PixelShuffleUpsample(nn.Module):
    """k x k conv (in -> out*r^2) + PixelShuffle(r): an r x up-sampler with no transposed conv (checkerboard-free)."""

    def __init__(self, in_ch: int, out_ch: int, scale: int = 2, kernel_size: int = 1, act: str | None = None,
                 bias: bool = True) -> None:
        super().__init__()
        check_channels("PixelShuffleUpsample", in_ch=in_ch, out_ch=out_ch, scale=scale)
        self.conv = nn.Conv2d(in_ch, out_ch * scale * scale, kernel_size, 1, kernel_size // 2, bias=bias)
        self.shuffle = nn.PixelShuffle(scale)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.act(self.shuffle(self.conv(x)))
