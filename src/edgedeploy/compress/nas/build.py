"""``build_model(arch)``: an ``Arch`` as an ``nn.Module`` made of edgedeploy's hardware-aware blocks.

Stem: ``conv`` = ConvBNAct 3x3 (stride 1), ``strided`` = ConvBNAct 3x3 stride 2, ``s2d`` = SpaceToDepthStem
(2x2 patches into channels, then a 1x1 ConvBNAct: no pixel dropped). Each stage: a transition block that halves
the resolution and sets the width, then ``depth - 1`` stride-1 blocks of the same type (see ``space.BLOCKS``).
Head: global average pool + linear. RepVGG / MobileOne blocks keep their train-time branches; ``deploy_form``
(used by the latency measurement and ``check``) fuses them as they ship.
"""
from __future__ import annotations

import torch
from torch import nn

from ...blocks import (
    ConvBNAct,
    DenseFeatBlock,
    GhostConv2d,
    MobileOneBlock,
    PartialConv2d,
    RepVGGBlock,
    SpaceToDepthStem,
)
from .space import Arch, StageArch

MOBILEONE_BRANCHES = 2      # train-time k x k branches per MobileOne block (4 in the paper; 2 trains 2x faster)


class Residual(nn.Module):
    """``x + body(x)`` followed by the activation: the stride-1 units of conv, ghost and partial stages."""

    def __init__(self, body: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


def _act(name: str) -> nn.Module:
    from ...blocks.conv_bn_act import make_act

    return make_act(name)


def _hidden(width: int, expansion: float) -> int:
    return max(1, round(width * expansion))


def transition(s: StageArch, in_ch: int, act: str) -> nn.Module:
    """The stage's first block: stride 2, ``in_ch`` -> ``s.width``."""
    c, k = s.width, s.kernel
    if s.block == "ghost":
        return GhostConv2d(in_ch, c, k, stride=2, act=act)
    if s.block == "dense":
        return DenseFeatBlock(in_ch, c, stride=2, growth_kernel=k, act=act)
    if s.block == "repvgg":
        return RepVGGBlock(in_ch, c, stride=2, act=act)
    if s.block == "mobileone":
        return nn.Sequential(MobileOneBlock(in_ch, in_ch, k, 2, groups=in_ch, num_branches=MOBILEONE_BRANCHES, act=act),
                             MobileOneBlock(in_ch, c, 1, 1, num_branches=MOBILEONE_BRANCHES, act=act))
    return ConvBNAct(in_ch, c, k, stride=2, act=act)          # conv, and the patch-merging conv of partial


def unit(s: StageArch, act: str) -> nn.Module:
    """One stride-1 block of the stage at its width."""
    c, k, h = s.width, s.kernel, _hidden(s.width, s.expansion)
    if s.block == "conv":
        return Residual(nn.Sequential(ConvBNAct(c, h, k, act=act), ConvBNAct(h, c, 1, act=None)), _act(act))
    if s.block == "ghost":
        return Residual(nn.Sequential(GhostConv2d(c, h, k, act=act), GhostConv2d(h, c, 1, act=None)), _act(act))
    if s.block == "partial":
        return Residual(nn.Sequential(PartialConv2d(c, 4, k, act=None, norm=False), ConvBNAct(c, h, 1, act=act),
                                      ConvBNAct(h, c, 1, act=None)), nn.Identity())
    if s.block == "dense":
        return DenseFeatBlock(c, c, stride=1, growth_kernel=k, act=act)
    if s.block == "repvgg":
        return RepVGGBlock(c, c, stride=1, act=act)
    return nn.Sequential(MobileOneBlock(c, c, k, 1, groups=c, num_branches=MOBILEONE_BRANCHES, act=act),
                         MobileOneBlock(c, c, 1, 1, num_branches=MOBILEONE_BRANCHES, act=act))


class NasNet(nn.Module):
    """stem -> stages -> global average pool -> linear; ``arch`` is kept as a plain attribute."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        self.arch_key = arch.key
        self.arch_dict = arch.to_dict()               # what a saved run model records to rebuild it (modelref)
        a = arch
        if a.stem == "s2d":
            self.stem: nn.Module = SpaceToDepthStem(a.in_channels, a.stem_width, 2, kernel_size=1, act=a.act)
        else:
            self.stem = ConvBNAct(a.in_channels, a.stem_width, 3, stride=2 if a.stem == "strided" else 1, act=a.act)
        stages, ch = [], a.stem_width
        for s in a.stages:
            stages.append(nn.Sequential(transition(s, ch, a.act), *(unit(s, a.act) for _ in range(s.depth - 1))))
            ch = s.width
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(ch, a.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def build_model(arch: Arch, seed: int | None = None) -> NasNet:
    """The network of ``arch`` (initial weights seeded when ``seed`` is given)."""
    if seed is not None:
        torch.manual_seed(seed)
    return NasNet(arch)
