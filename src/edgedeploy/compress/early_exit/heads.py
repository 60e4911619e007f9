"""Exit heads: small classifiers read from a stage's feature map (conv maps, token sequences or vectors)."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ...errors import ConfigError, ShapeError

HeadFactory = Callable[[tuple[int, ...], int], nn.Module]


class ExitHead(nn.Module):
    """[optional conv3x3 stride 2 + BN + ReLU] -> adaptive average pool to ``pool`` x ``pool`` -> linear.

    Token sequences (N, T, C) are averaged over tokens; vectors (N, C) go straight to the linear layer.
    """

    def __init__(self, feature_shape: tuple[int, ...], num_classes: int, conv: bool = False, pool: int = 1) -> None:
        super().__init__()
        if len(feature_shape) not in (2, 3, 4):
            raise ShapeError(f"an exit head reads (N, C), (N, T, C) or (N, C, H, W) features, got {feature_shape}")
        self.rank = len(feature_shape)
        channels = feature_shape[1] if self.rank == 4 else feature_shape[-1]
        self.conv = (nn.Sequential(nn.Conv2d(channels, channels, 3, 2, 1, bias=False), nn.BatchNorm2d(channels),
                                   nn.ReLU()) if conv and self.rank == 4 else nn.Identity())
        self.pool = nn.AdaptiveAvgPool2d(pool) if self.rank == 4 else nn.Identity()
        width = channels * (pool * pool if self.rank == 4 else 1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rank == 3:
            x = x.mean(1)
        elif self.rank == 4:
            x = torch.flatten(self.pool(self.conv(x)), 1)
        return self.fc(x)


HEADS: dict[str, HeadFactory] = {
    "pool-linear": lambda shape, n: ExitHead(shape, n, conv=False, pool=1),
    "pool2-linear": lambda shape, n: ExitHead(shape, n, conv=False, pool=2),
    "conv-pool-linear": lambda shape, n: ExitHead(shape, n, conv=True, pool=2),
}


def head_factory(head: str | HeadFactory) -> HeadFactory:
    """A named head builder, or the user's ``callable(feature_shape, num_classes) -> nn.Module``."""
    if callable(head):
        return head
    if head not in HEADS:
        raise ConfigError(f"unknown exit head {head!r}; choose one of {', '.join(HEADS)} or pass "
                          "callable(feature_shape, num_classes) -> nn.Module")
    return HEADS[head]
