"""Gaze correction by warping: per-eye "ColorModel" networks predict a flow field and a brightness map.

Design (after DeepWarp and Intel's ECC-Net, and the tutorial's ColorModel interface):

* ``EyeWarpNet`` (one eye, the tutorial's ColorModel interface): input (N, 2, 48, 64), output (N, 4, 48, 64)
  = Concat(flow in pixels (2), Softmax(2)). The 2 input channels are, in this design: channel 0 the eye
  patch's grey level (luma, 0-255) and channel 1 a constant plane holding the redirection angle in degrees
  (how far below the camera the user looks while reading the screen, a property of the camera/screen
  setup, like DeepWarp's angle input). Output channels 0-1 are the backward flow (dx, dy) in pixels: output
  pixel p samples the input at p + flow(p). Channels 2-3 are a Softmax pair (keep, brighten): the corrected
  pixel is ``keep * warped + brighten * 255`` (a blend towards white that paints sclera uncovered by the
  raised lid and iris, DeepWarp's lightness correction).
* ``GazeCorrector``: input (N, 4, 48, 64) = [left eye (2 ch), right eye (2 ch)], "left" meaning the eye on
  the image's left; output (N, 2, 48, 64) = the corrected grey patches. ``left_model`` and ``right_model``
  are two sub-models; the right one is built as the exact mirror image of the left (kernels flipped, dx
  negated, sub-pixel channels swapped): the network uses only 3x3 stride-1 convolutions, 2x2 pooling and
  learned 2x PixelShuffle up-sampling on even sizes, so mirroring the weights mirrors the function exactly,
  and training sees both eyes. PixelShuffle (ONNX DepthToSpace), not Resize: the MyriadX 2021.4 reader
  knows Resize only up to opset 13, and the dynamo exporter writes Resize-19.
* The warp is ``grid_sample`` (bilinear, border padding, align_corners=True) on a sampling grid built from
  the input size in ``forward``: the dynamo ONNX exporter freezes that grid as a constant for the exported
  48x64 patch (fine here: the patch size is fixed; another size needs a re-export).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, ShapeError

PATCH = (48, 64)


@dataclass(frozen=True)
class GazeNetConfig:
    """Widths of the per-eye network (encoder levels at 1, 1/2, 1/4, 1/8 scale) and the largest flow (px)."""

    widths: tuple[int, int, int, int] = (8, 16, 24, 32)
    max_flow: float = 10.0
    angle_scale: float = 20.0        # degrees that map to 1.0 inside the network

    def __post_init__(self) -> None:
        if len(self.widths) != 4 or any(int(w) < 2 for w in self.widths):
            raise ConfigError(f"widths={self.widths} must be 4 channel counts >= 2 (one per scale)")
        if not 0 < self.max_flow <= 32:
            raise ConfigError(f"max_flow={self.max_flow} px must be in (0, 32]")


def _cbr(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def _up(cin: int, cout: int) -> nn.Sequential:
    """Learned 2x up-sampling: 1x1 conv to 4x channels, then PixelShuffle (sub-pixel convolution)."""
    return nn.Sequential(nn.Conv2d(cin, 4 * cout, 1), nn.PixelShuffle(2))


class EyeWarpNet(nn.Module):
    """One eye's ColorModel: (N, 2, H, W) [grey 0-255, angle plane in degrees] -> (N, 4, H, W) [flow px, softmax]."""

    VERSION = 3      # bump when the layers change: trained weights are cached under a key that includes it

    def __init__(self, config: GazeNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or GazeNetConfig()
        w1, w2, w3, w4 = self.config.widths
        self.enc1, self.enc2 = _cbr(2, w1), _cbr(w1, w2)
        self.enc3 = nn.Sequential(_cbr(w2, w3), _cbr(w3, w3))
        self.enc4 = nn.Sequential(_cbr(w3, w4), _cbr(w4, w4))
        self.lat3, self.lat2, self.lat1 = _up(w4, w3), _up(w3, w2), _up(w2, w1)
        self.dec3, self.dec2, self.dec1 = _cbr(w3, w3), _cbr(w2, w2), _cbr(w1, w1)
        self.head = nn.Conv2d(w1, 4, 3, padding=1)
        nn.init.zeros_(self.head.weight)          # start as the identity warp that keeps every pixel
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor([0.0, 0.0, 4.0, -4.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x[:, 0:1] * (2.0 / 255.0) - 1.0
        angle = x[:, 1:2] * (1.0 / self.config.angle_scale)
        e1 = self.enc1(torch.cat([grey, angle], 1))
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        e4 = self.enc4(F.max_pool2d(e3, 2))
        d3 = self.dec3(e3 + self.lat3(e4))
        d2 = self.dec2(e2 + self.lat2(d3))
        d1 = self.dec1(e1 + self.lat1(d2))
        out = self.head(d1)
        flow = torch.tanh(out[:, 0:2]) * self.config.max_flow
        return torch.cat([flow, torch.softmax(out[:, 2:4], dim=1)], 1)


def mirror_net(net: EyeWarpNet) -> EyeWarpNet:
    """The mirror image of ``net``: ``mirror(x) = flip(net(flip(x)))`` with dx negated, via rearranged weights."""
    twin = copy.deepcopy(net)
    with torch.no_grad():
        for m in twin.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(m.weight.flip(-1))
        for up in (twin.lat3, twin.lat2, twin.lat1):     # sub-pixel channel c*4 + 2i + j feeds column 2w + j
            conv = up[0]
            swap = torch.arange(conv.out_channels).view(-1, 2, 2).flip(-1).reshape(-1)
            conv.weight.copy_(conv.weight[swap])
            conv.bias.copy_(conv.bias[swap])
        twin.head.weight[0].neg_()
        twin.head.bias[0].neg_()
    return twin


def sampling_grid(flow: torch.Tensor) -> torch.Tensor:
    """grid_sample grid (N, H, W, 2) in [-1, 1] (align_corners=True) for a backward flow (N, 2, H, W) in pixels."""
    n, _, h, w = flow.shape
    if not torch.jit.is_tracing() and (h < 2 or w < 2):   # eager-only shape checks: the tracer would warn
        raise ShapeError(f"flow of shape {tuple(flow.shape)}: the warp needs at least 2x2 pixels")
    # arange, not linspace: the torchscript exporter folds linspace into a float64 constant
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w).expand(n, h, w)
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1).expand(n, h, w)
    gx = (xs + flow[:, 0]) * (2.0 / (w - 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / (h - 1)) - 1.0
    return torch.stack([gx, gy], dim=-1)


def apply_field(image: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """Warp ``image`` (N, C, H, W, 0-255) by a ColorModel output (N, 4, H, W) and blend towards white."""
    if not torch.jit.is_tracing() and (field.shape[1] != 4 or image.shape[0] != field.shape[0]
                                       or image.shape[-2:] != field.shape[-2:]):
        raise ShapeError(f"apply_field needs an image (N, C, H, W) and a field (N, 4, H, W) of the same N, H, W; "
                         f"got {tuple(image.shape)} and {tuple(field.shape)}")
    warped = F.grid_sample(image, sampling_grid(field[:, 0:2]), mode="bilinear", padding_mode="border",
                           align_corners=True)
    return warped * field[:, 2:3] + field[:, 3:4] * 255.0


class GazeCorrector(nn.Module):
    """Both eyes: (N, 4, 48, 64) [left grey, left angle, right grey, right angle] -> (N, 2, 48, 64) corrected grey."""

    def __init__(self, left: EyeWarpNet | None = None, right: EyeWarpNet | None = None) -> None:
        super().__init__()
        self.left_model = left if left is not None else EyeWarpNet()
        self.right_model = right if right is not None else mirror_net(self.left_model)

    def fields(self, x: torch.Tensor) -> torch.Tensor:
        """The two ColorModel outputs side by side: (N, 8, H, W) = [left field (4), right field (4)]."""
        _check_input(x)
        return torch.cat([self.left_model(x[:, 0:2]), self.right_model(x[:, 2:4])], 1)

    def warp(self, x: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        """Apply (N, 8, H, W) fields to the grey channels of ``x``: the host part of a split deployment."""
        left = apply_field(x[:, 0:1], fields[:, 0:4])
        right = apply_field(x[:, 2:3], fields[:, 4:8])
        return torch.cat([left, right], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.warp(x, self.fields(x))


def _check_input(x: torch.Tensor) -> None:
    if torch.jit.is_tracing():
        return
    if x.ndim != 4 or x.shape[1] != 4:
        raise ShapeError(f"GazeCorrector expects (N, 4, H, W) = [left grey, left angle, right grey, right angle]; "
                         f"got {tuple(x.shape)}")
    if x.shape[-2] % 8 or x.shape[-1] % 8:
        raise ShapeError(f"eye patches of {tuple(x.shape[-2:])}: height and width must be multiples of 8 "
                         f"(three 2x poolings); the model is trained on {PATCH[0]}x{PATCH[1]}")


class FieldSmoother:
    """Temporal smoothing for video: an exponential moving average of the predicted fields, frame after frame.

    ``alpha`` is the weight of the newest frame (1.0 = no smoothing). Smoothing the warp (not the pixels)
    removes jitter of the eye without ghosting the image itself. Takes torch tensors or numpy arrays (a host
    script smoothing what the device sends back)."""

    def __init__(self, alpha: float = 0.3) -> None:
        if not 0 < alpha <= 1:
            raise ConfigError(f"smoothing alpha={alpha} must be in (0, 1] (1 = no smoothing)")
        self.alpha = alpha
        self.state: Any = None

    def __call__(self, fields: Any) -> Any:
        """Blend ``fields`` into the running average and return it."""
        new = fields.detach().clone() if isinstance(fields, torch.Tensor) else np.array(fields, copy=True)
        if self.state is None or self.state.shape != new.shape or type(self.state) is not type(new):
            self.state = new
        else:
            self.state = self.alpha * new + (1 - self.alpha) * self.state
        return self.state

    def reset(self) -> None:
        """Forget the history (a cut in the video, a new face)."""
        self.state = None
