"""ConvBNAct: Conv2d (no bias) -> BatchNorm2d -> activation, the baseline every block is compared with."""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError


def make_act(name: str | None) -> nn.Module:
    """Activation module by name ('relu', 'relu6', 'silu', 'hardswish', 'gelu', None/'none' = identity)."""
    acts = {"relu": nn.ReLU, "relu6": nn.ReLU6, "silu": nn.SiLU, "hardswish": nn.Hardswish, "gelu": nn.GELU}
    if name is None or name == "none":
        return nn.Identity()
    if name not in acts:
        raise ConfigError(f"unknown activation {name!r}; choose one of {sorted(acts) + ['none']}")
    return acts[name](inplace=True) if name != "gelu" else acts[name]()


def check_channels(block: str, **channels: int) -> None:
    """Raise ConfigError unless every channel count is a positive int."""
    for key, value in channels.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{block}: {key} must be a positive int (got {value!r})")


class ConvBNAct(nn.Module):
    """Conv2d(k, stride, 'same' padding, groups, bias=False) + BatchNorm2d + activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 act: str | None = "relu", dilation: int = 1) -> None:
        super().__init__()
        check_channels("ConvBNAct", in_ch=in_ch, out_ch=out_ch, groups=groups)
        if in_ch % groups or out_ch % groups:
            raise ConfigError(f"ConvBNAct: in_ch={in_ch} and out_ch={out_ch} must both be divisible by groups={groups}")
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, dilation * (kernel_size // 2), dilation=dilation,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = make_act(act)

    def forward(self, x):  # noqa: D102
        return self.act(self.bn(self.conv(x)))
