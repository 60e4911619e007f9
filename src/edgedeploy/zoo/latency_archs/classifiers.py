"""Classifiers of the published latency tables: MobileOne-S0 (deploy form), torchvision's bottleneck ResNets,
SqueezeNet 1.1, MobileNetV3-Large, and the tutorial's on-device up-sampling layers."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._layers import Conv, div8


class MobileOneS0(nn.Module):
    """MobileOne-S0 (Vasu et al. 2023) in deploy form: every unit is a 3x3 depthwise + ReLU, 1x1 + ReLU."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        widths, depths = (48, 128, 256, 1024), (2, 8, 10, 1)          # 0.75, 1.0, 1.0, 2.0 x (64, 128, 256, 512)
        layers: list[nn.Module] = [nn.Conv2d(3, 48, 3, 2, 1), nn.ReLU()]
        cin = 48
        for width, depth in zip(widths, depths):
            for i in range(depth):
                layers += [nn.Conv2d(cin, cin, 3, 2 if i == 0 else 1, 1, groups=cin), nn.ReLU(),
                           nn.Conv2d(cin, width, 1), nn.ReLU()]
                cin = width
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def mobileone_s0() -> MobileOneS0:
    """MobileOne-S0, deploy form: 2.1 M params, ~0.27 GMACs at 224x224."""
    return MobileOneS0()


class _Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck with ResNeXt groups and wide widths."""

    def __init__(self, cin: int, planes: int, stride: int, groups: int, base_width: int) -> None:
        super().__init__()
        width = int(planes * base_width / 64) * groups
        self.body = nn.Sequential(Conv(cin, width, 1, act="relu"), Conv(width, width, 3, stride, act="relu",
                                                                        groups=groups),
                                  nn.Conv2d(width, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4))
        self.short = (nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
                      if stride != 1 or cin != planes * 4 else nn.Identity())
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.act(self.body(x) + self.short(x))


class BottleneckResNet(nn.Module):
    """torchvision's bottleneck ResNets: ResNet-101, Wide ResNet-50-2, ResNeXt-50 32x4d (ImageNet head)."""

    def __init__(self, depths: tuple[int, ...], groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = [Conv(3, 64, 7, 2, act="relu"), nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), depths)):
            for j in range(n):
                layers.append(_Bottleneck(cin, planes, 2 if i > 0 and j == 0 else 1, groups, base_width))
                cin = planes * 4
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def resnet101() -> BottleneckResNet:
    """ResNet-101: 44.5 M params, 7.8 GMACs at 224x224."""
    return BottleneckResNet((3, 4, 23, 3))


def wide_resnet50_2() -> BottleneckResNet:
    """Wide ResNet-50-2: 68.9 M params, 11.4 GMACs at 224x224."""
    return BottleneckResNet((3, 4, 6, 3), base_width=128)


def resnext50_32x4d() -> BottleneckResNet:
    """ResNeXt-50 32x4d: 25.0 M params, 4.3 GMACs at 224x224."""
    return BottleneckResNet((3, 4, 6, 3), groups=32, base_width=4)


class _Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.e1, self.e3 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU()), nn.Sequential(
            nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.squeeze(x)
        return torch.cat([self.e1(x), self.e3(x)], 1)


class SqueezeNet11(nn.Module):
    """SqueezeNet 1.1 (torchvision layout): fire modules, max pools, conv classifier."""

    def __init__(self) -> None:
        super().__init__()
        pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2), nn.ReLU(), pool(), _Fire(64, 16, 64), _Fire(128, 16, 64), pool(),
            _Fire(128, 32, 128), _Fire(256, 32, 128), pool(), _Fire(256, 48, 192), _Fire(384, 48, 192),
            _Fire(384, 64, 256), _Fire(512, 64, 256))
        self.classifier = nn.Sequential(nn.Conv2d(512, 1000, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.flatten(F.adaptive_avg_pool2d(self.classifier(self.features(x)), 1), 1)


def squeezenet1_1() -> SqueezeNet11:
    """SqueezeNet 1.1: 1.24 M params, 0.35 GMACs at 224x224."""
    return SqueezeNet11()


class _SE(nn.Module):
    def __init__(self, c: int, squeeze: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class _MBV3Block(nn.Module):
    def __init__(self, cin: int, k: int, exp: int, cout: int, se: bool, act: str, stride: int) -> None:
        super().__init__()
        a = nn.Hardswish if act == "hs" else nn.ReLU
        layers: list[nn.Module] = []
        if exp != cin:
            layers += [nn.Conv2d(cin, exp, 1, bias=False), nn.BatchNorm2d(exp), a()]
        layers += [nn.Conv2d(exp, exp, k, stride, k // 2, groups=exp, bias=False), nn.BatchNorm2d(exp), a()]
        if se:
            layers.append(_SE(exp, div8(exp // 4)))
        layers += [nn.Conv2d(exp, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.res = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x + self.body(x) if self.res else self.body(x)


class MobileNetV3Large(nn.Module):
    """MobileNetV3-Large 1.0 (Howard et al. 2019, torchvision layout): hardswish, squeeze-excite."""

    def __init__(self) -> None:
        super().__init__()
        cfg = [(3, 16, 16, False, "re", 1), (3, 64, 24, False, "re", 2), (3, 72, 24, False, "re", 1),
               (5, 72, 40, True, "re", 2), (5, 120, 40, True, "re", 1), (5, 120, 40, True, "re", 1),
               (3, 240, 80, False, "hs", 2), (3, 200, 80, False, "hs", 1), (3, 184, 80, False, "hs", 1),
               (3, 184, 80, False, "hs", 1), (3, 480, 112, True, "hs", 1), (3, 672, 112, True, "hs", 1),
               (5, 672, 160, True, "hs", 2), (5, 960, 160, True, "hs", 1), (5, 960, 160, True, "hs", 1)]
        layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish()]
        cin = 16
        for k, exp, cout, se, act, s in cfg:
            layers.append(_MBV3Block(cin, k, exp, cout, se, act, s))
            cin = cout
        layers += [nn.Conv2d(cin, 960, 1, bias=False), nn.BatchNorm2d(960), nn.Hardswish()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(960, 1280), nn.Hardswish(), nn.Linear(1280, 1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def mobilenet_v3_large() -> MobileNetV3Large:
    """MobileNetV3-Large: 5.5 M params, 0.22 GMACs at 224x224."""
    return MobileNetV3Large()


def pixel_shuffle_up() -> nn.Module:
    """The tutorial's on-device PixelShuffle row: 1x1 conv 128 -> 512 + PixelShuffle(2) (128 channels out)."""
    from ...blocks.pixel_shuffle import PixelShuffleUpsample

    return PixelShuffleUpsample(128, 128, 2)


def transposed_conv_up() -> nn.Module:
    """The tutorial's on-device TransposedConv2D row: ConvTranspose2d(128, 128, 3, stride 2) doubling the size."""
    return nn.ConvTranspose2d(128, 128, 3, 2, 1, output_padding=1)
