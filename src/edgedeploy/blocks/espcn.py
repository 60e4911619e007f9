"""ESPCN (Shi et al. 2016): efficient sub-pixel CNN super-resolution; all convs at low resolution, one pixel shuffle."""
from __future__ import annotations

import torch
from torch import nn

from .conv_bn_act import check_channels
from .pixel_shuffle import PixelShuffleUpsample


class ESPCN(nn.Module):
    """5x5 conv (64) -> tanh -> 3x3 conv (32) -> tanh -> 3x3 conv to C*r^2 + PixelShuffle(r), as in the paper."""

    def __init__(self, channels: int = 1, scale: int = 3, features: tuple[int, int] = (64, 32)) -> None:
        super().__init__()
        check_channels("ESPCN", channels=channels, scale=scale, f1=features[0], f2=features[1])
        self.body = nn.Sequential(
            nn.Conv2d(channels, features[0], 5, padding=2), nn.Tanh(),
            nn.Conv2d(features[0], features[1], 3, padding=1), nn.Tanh(),
        )
        self.upsample = PixelShuffleUpsample(features[1], channels, scale, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.upsample(self.body(x))
