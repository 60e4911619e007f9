"""PartialConv2d (FasterNet's PConv, Chen et al. 2023): a k x k conv on 1/n_div of the channels, identity on the rest.

Followed here by BatchNorm + activation over all channels, like the Conv2D + BN + ReLU it replaces. At the
tutorial's 352x1280 input (thop counting) the MACs match its rows: 32 ch: 317.2 M vs 320.79 M (-1.1%);
64 ch: 1.153 G vs 1.157 G (-0.3%). The parameters do not: 640 vs 742 and 2,432 vs 2,630. The tutorial's counts
exceed the 3x3 weights on C/4 channels plus the BN's gamma/beta by 102 and 198 (3C + 6), which no published PConv
variant adds (FasterNet's PConv has neither bias nor norm; a bias adds C/4, 8 and 16). Counting the BN running
statistics as parameters (Keras style) gives 704 and 2,560 (-5%, -3%), so the tutorial's tool most likely counted
buffers or an extra per-channel layer we cannot identify; we keep the published PConv.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .conv_bn_act import check_channels, make_act


class PartialConv2d(nn.Module):
    """Conv (k x k, stride 1) over the first channels // n_div channels, others passed through; then BN + act."""

    def __init__(self, channels: int, n_div: int = 4, kernel_size: int = 3, act: str | None = "relu",
                 norm: bool = True) -> None:
        super().__init__()
        check_channels("PartialConv2d", channels=channels, n_div=n_div)
        if channels < n_div:
            raise ConfigError(f"PartialConv2d: channels={channels} must be >= n_div={n_div} (nothing to convolve)")
        self.conv_ch = channels // n_div
        self.conv = nn.Conv2d(self.conv_ch, self.conv_ch, kernel_size, 1, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(channels) if norm else nn.Identity()
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x1, x2 = torch.split(x, [self.conv_ch, x.shape[1] - self.conv_ch], dim=1)
        return self.act(self.bn(torch.cat([self.conv(x1), x2], dim=1)))
