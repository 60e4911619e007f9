"""MobileOneBlock (Vasu et al. 2023, also FastViT's conv stem): k over-parameterized conv-BN branches at train time.

Train: act(sum_i BN_i(conv_kxk_i(x)) + BN(conv1x1(x)) [scale branch, k > 1] + BN(x) [identity, when shapes allow]).
Infer: one k x k conv with bias. Used depthwise (groups = channels) then pointwise (k = 1) as in MobileOne.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ._fuse import branch_kernel, conv_bn, fused_conv
from .conv_bn_act import check_channels, make_act


class MobileOneBlock(nn.Module):
    """``num_branches`` parallel k x k conv-BN branches + 1x1 scale branch + BN identity; reparameterizable."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 num_branches: int = 4, act: str | None = "relu") -> None:
        super().__init__()
        check_channels("MobileOneBlock", in_ch=in_ch, out_ch=out_ch, groups=groups, num_branches=num_branches)
        if in_ch % groups or out_ch % groups:
            raise ConfigError(f"MobileOneBlock: in_ch={in_ch}, out_ch={out_ch} must be divisible by groups={groups}")
        self.groups, self.out_ch, self.kernel_size = groups, out_ch, kernel_size
        self.rbr_conv = nn.ModuleList(conv_bn(in_ch, out_ch, kernel_size, stride, groups) for _ in range(num_branches))
        self.rbr_scale = conv_bn(in_ch, out_ch, 1, stride, groups) if kernel_size > 1 else None
        self.rbr_skip = nn.BatchNorm2d(in_ch) if in_ch == out_ch and stride == 1 else None
        self.reparam_conv: nn.Conv2d | None = None
        self.act = make_act(act)

    def _branches(self) -> list[nn.Module]:
        extra = [b for b in (self.rbr_scale, self.rbr_skip) if b is not None]
        return list(self.rbr_conv) + extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.reparam_conv is not None:
            return self.act(self.reparam_conv(x))
        branches = self._branches()
        y = branches[0](x)
        for b in branches[1:]:
            y = y + b(x)
        return self.act(y)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold every branch and its BN into one k x k conv with bias (in place)."""
        if self.reparam_conv is not None:
            return
        kernels = [branch_kernel(b, self.out_ch, self.groups, self.kernel_size) for b in self._branches()]
        self.reparam_conv = fused_conv(self.rbr_conv[0].conv, sum(k[0] for k in kernels), sum(k[1] for k in kernels))
        del self.rbr_conv, self.rbr_scale, self.rbr_skip
        self.rbr_conv, self.rbr_scale, self.rbr_skip = nn.ModuleList(), None, None


class MobileOneUnit(nn.Sequential):
    """MobileOne's basic unit: depthwise MobileOneBlock (k x k, stride) then pointwise MobileOneBlock (1x1)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, num_branches: int = 4, act: str | None = "relu"):
        super().__init__(
            MobileOneBlock(in_ch, in_ch, 3, stride, groups=in_ch, num_branches=num_branches, act=act),
            MobileOneBlock(in_ch, out_ch, 1, 1, groups=1, num_branches=num_branches, act=act),
        )
