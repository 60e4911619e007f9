"""A small ResNet for the 1x16x16 digits: two stages of basic residual blocks (the pruning case study)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .digits import load_digits_data, train_classifier
from .registry import register_model


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a shortcut (1x1 conv-BN when the shape changes), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(self.shortcut(x) + out)


class DigitsResNet(nn.Module):
    """Stem, stage1 (``blocks`` blocks at 16x16, width w), stage2 (``blocks`` at 8x8, width 2w), classifier."""

    def __init__(self, width: int = 16, blocks: int = 2, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.stage1 = nn.Sequential(*[BasicBlock(w, w) for _ in range(blocks)])
        self.stage2 = nn.Sequential(BasicBlock(w, 2 * w, stride=2), *[BasicBlock(2 * w, 2 * w) for _ in range(blocks - 1)])
        self.fc = nn.Linear(2 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage2(self.stage1(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@register_model("digits-resnet")
def digits_resnet(width: int = 16, blocks: int = 2, pretrained: bool = False, epochs: int = 8,
                  seed: int = 0) -> DigitsResNet:
    """The small digits ResNet; ``pretrained=True`` trains it here on sklearn's digits."""
    torch.manual_seed(seed)
    model = DigitsResNet(width=width, blocks=blocks)
    if pretrained:
        train_classifier(model, load_digits_data(), epochs=epochs, seed=seed)
    return model.eval()
