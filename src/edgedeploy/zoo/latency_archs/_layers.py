"""Shared pieces of the latency-calibration architectures: Conv-BN-act and channel rounding."""
from __future__ import annotations

import math

from torch import nn

ACTS = {"relu": nn.ReLU, "silu": nn.SiLU, "leaky": lambda: nn.LeakyReLU(0.1), "relu6": nn.ReLU6}


def div8(c: float) -> int:
    return int(math.ceil(c / 8) * 8)


class Conv(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d + activation, 'same' padding."""

    def __init__(self, cin: int, cout: int, k: int = 1, s: int = 1, act: str = "silu", groups: int = 1,
                 dilation: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, k, s, dilation * (k // 2), dilation=dilation, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), ACTS[act]())
