"""scikit-learn's real handwritten digits (1,797 8x8 images) as tensors, a small CNN, and its training loop."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..data import Splits
from .registry import register_model, register_task


@dataclass(frozen=True)
class DigitsData(Splits):
    """Train/test split of the digits (N, C, size, size) in [0, 1] with integer labels."""


def load_digits_data(size: int = 16, channels: int = 1, test_fraction: float = 0.25, seed: int = 0) -> DigitsData:
    """Load sklearn's bundled digits, bilinear-upsampled to size x size, split deterministically."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.repeat(1, channels, 1, 1)
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(x) * test_fraction)
    te, tr = perm[:n_test], perm[n_test:]
    return DigitsData(x[tr], y[tr], x[te], y[te])


class DigitsCNN(nn.Module):
    """Small conv net for 1x16x16 digits: three conv-BN-ReLU stages, a residual block, a classifier."""

    def __init__(self, width: int = 16, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU())
        self.res = nn.Sequential(nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
                                 nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w))
        self.head = nn.Sequential(nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU())
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(self.stem(x))
        x = F.relu(x + self.res(x))
        x = self.head(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@register_model("digits-cnn")
def digits_cnn(width: int = 16, pretrained: bool = False, epochs: int = 8, seed: int = 0) -> DigitsCNN:
    """The digits CNN; ``pretrained=True`` trains it here on sklearn's digits (seconds on a CPU), seeded."""
    if pretrained:
        torch.manual_seed(seed)          # the initial weights too, not only the training order
    model = DigitsCNN(width=width)
    if pretrained:
        train_classifier(model, load_digits_data(), epochs=epochs, seed=seed)
    return model.eval()


def train_classifier(model: nn.Module, data: DigitsData, epochs: int = 8, lr: float = 3e-3,
                     seed: int = 0, batch_size: int = 64) -> list[float]:
    """Train with Adam + cross-entropy; returns per-epoch mean training loss. Deterministic for a seed."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    model.train()
    for epoch in range(epochs):
        total, n = 0.0, 0
        for xb, yb in data.batches(batch_size, train=True, seed=seed + epoch):
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(xb), n + len(xb)
        history.append(total / n)
    model.eval()
    return history


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent."""
    model.eval()
    correct = sum((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
                  for i in range(0, len(x), batch_size))
    return 100.0 * correct / len(x)


def digits_for(shape: tuple[int, ...]) -> DigitsData:
    """The digits resized to a square NxCxHxW model input (the built-in dataset ``digits``)."""
    from ..errors import ConfigError

    if len(shape) != 4 or shape[2] != shape[3] or shape[1] not in (1, 3):
        raise ConfigError(f"the digits dataset needs a square Nx1xHxW or Nx3xHxW image input, but the model takes "
                          f"{'x'.join(map(str, shape))}; give a folder of images or a .npy file instead")
    return load_digits_data(size=shape[2], channels=shape[1])



def _train_task(model: nn.Module, data: DigitsData | None = None, epochs: int = 8, seed: int = 0) -> list[dict[str, float]]:
    """The recipe's train step for the digits CNN: Adam + cross-entropy on the real digits' training split."""
    losses = train_classifier(model, data or load_digits_data(), epochs=epochs, seed=seed)
    return [{"epoch": float(i + 1), "loss": loss} for i, loss in enumerate(losses)]


register_task("digits-cnn", trainer=_train_task)
