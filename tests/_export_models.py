"""Small models shared by the export/runtime tests and benchmarks: plain CNN, PixelShuffle, flow warp."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PlainCNN(nn.Module):
    """Conv-BN-ReLU stack with a classifier head."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.Conv2d(32, 64, 1), nn.ReLU())
        self.head = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


class ShuffleUp(nn.Module):
    """ESPCN-style x2 up-sampler: conv to 4x channels, PixelShuffle (DepthToSpace in ONNX)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3 * 4, 3, padding=1))
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.shuffle(self.body(x)))


class FlowWarp(nn.Module):
    """Gaze-correction style warp: predict a flow field, add it to an identity grid, grid_sample the image."""

    def __init__(self) -> None:
        super().__init__()
        self.flow = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        # arange, not linspace: the torchscript exporter folds linspace into a float64 constant, and
        # ONNX Runtime has no GridSample kernel for a float64 grid
        ys = (torch.arange(h, dtype=x.dtype) * (2.0 / (h - 1)) - 1.0).view(1, h, 1).expand(n, h, w)
        xs = (torch.arange(w, dtype=x.dtype) * (2.0 / (w - 1)) - 1.0).view(1, 1, w).expand(n, h, w)
        grid = torch.stack((xs, ys), dim=-1) + 0.1 * torch.tanh(self.flow(x)).permute(0, 2, 3, 1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


class Svd(nn.Module):
    """Uses an op (linalg.svd) that neither ONNX exporter supports."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, 3, 1)
        self.spectral = _SpectralNorm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spectral(self.proj(x))


class _SpectralNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.svdvals(x)


def _seeded(cls: type[nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    m = cls()
    for mod in m.modules():   # non-trivial BN statistics so folding is exercised
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


def plain_cnn() -> nn.Module:
    return _seeded(PlainCNN)


def shuffle_up() -> nn.Module:
    return _seeded(ShuffleUp)


def flow_warp() -> nn.Module:
    return _seeded(FlowWarp)
