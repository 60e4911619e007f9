"""RepVGGBlock (Ding et al. 2021): train with 3x3 + 1x1 + identity branches, infer with one 3x3 conv."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ._fuse import branch_kernel, conv_bn, fused_conv
from .conv_bn_act import check_channels, make_act


class RepVGGBlock(nn.Module):
    """act(BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x)); ``reparameterize()`` folds all into one biased 3x3 conv."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, groups: int = 1, act: str | None = "relu") -> None:
        super().__init__()
        check_channels("RepVGGBlock", in_ch=in_ch, out_ch=out_ch, groups=groups)
        if in_ch % groups or out_ch % groups:
            raise ConfigError(f"RepVGGBlock: in_ch={in_ch}, out_ch={out_ch} must be divisible by groups={groups}")
        self.groups = groups
        self.out_ch = out_ch
        self.rbr_dense = conv_bn(in_ch, out_ch, 3, stride, groups)
        self.rbr_1x1 = conv_bn(in_ch, out_ch, 1, stride, groups)
        self.rbr_identity = nn.BatchNorm2d(in_ch) if in_ch == out_ch and stride == 1 else None
        self.reparam_conv: nn.Conv2d | None = None
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.reparam_conv is not None:
            return self.act(self.reparam_conv(x))
        y = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            y = y + self.rbr_identity(x)
        return self.act(y)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the branches by one 3x3 conv with bias (in place; uses BN running statistics)."""
        if self.reparam_conv is not None:
            return
        branches = [self.rbr_dense, self.rbr_1x1] + ([self.rbr_identity] if self.rbr_identity is not None else [])
        kernels = [branch_kernel(b, self.out_ch, self.groups, 3) for b in branches]
        self.reparam_conv = fused_conv(self.rbr_dense.conv, sum(k[0] for k in kernels), sum(k[1] for k in kernels))
        del self.rbr_dense, self.rbr_1x1, self.rbr_identity
        self.rbr_identity = None
