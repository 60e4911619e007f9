"""DeepLabV3 with a MobileNetV2 backbone (Luxonis' deeplab_v3_mnv2 blobs)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._layers import Conv


class _InvRes(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int, dilation: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = [Conv(cin, hidden, 1, act="relu6")] if expand != 1 else []
        layers += [Conv(hidden, hidden, 3, stride, act="relu6", groups=hidden, dilation=dilation),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.res = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x + self.conv(x) if self.res else self.conv(x)


class DeepLabV3MobileNetV2(nn.Module):
    """DeepLabV3 with a MobileNetV2 backbone and the light ASPP (1x1 + image pooling) of TensorFlow's
    ``deeplabv3_mnv2`` (what Luxonis' deeplab_v3_mnv2_256x256 / 513x513 blobs were converted from), at output
    stride 16 as in TF DeepLab's model zoo (2.75 B MAdds at 513x513); returns the argmax class map."""

    def __init__(self, num_classes: int = 21, output_stride: int = 16) -> None:
        super().__init__()
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1)]
        layers: list[nn.Module] = [Conv(3, 32, 3, 2, act="relu6")]
        cin, stride, dilation = 32, 2, 1
        for t, c, n, s in cfg:
            for i in range(n):
                st = s if i == 0 else 1
                if st == 2 and stride >= output_stride:     # later strides become dilations
                    dilation, st = dilation * 2, 1
                elif st == 2:
                    stride *= 2
                layers.append(_InvRes(cin, c, st, t, dilation))
                cin = c
        self.backbone = nn.Sequential(*layers)
        self.aspp = Conv(cin, 256, 1, act="relu")
        self.pool_proj = Conv(cin, 256, 1, act="relu")
        self.project = Conv(512, 256, 1, act="relu")
        self.logits = nn.Conv2d(256, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        size = x.shape[-2:]
        f = self.backbone(x)
        pooled = F.interpolate(self.pool_proj(F.adaptive_avg_pool2d(f, 1)), size=f.shape[-2:], mode="bilinear",
                               align_corners=False)
        y = self.logits(self.project(torch.cat([pooled, self.aspp(f)], 1)))
        return torch.argmax(F.interpolate(y, size=size, mode="bilinear", align_corners=False), 1)


def deeplabv3_mnv2() -> DeepLabV3MobileNetV2:
    """DeepLabV3-MobileNetV2 (output stride 16, 21 classes): 2.1 M params, ~2.8 GMACs at 513x513."""
    return DeepLabV3MobileNetV2()
