"""The head/body detector of the tutorial's first case study, in a baseline and a hardware-aware variant.

Design (anchor-free, CenterNet-style, Zhou et al. 2019): a 4-level encoder (strides 4, 8, 16, 32), a decoder that
up-samples back to stride 4 adding the encoder's features at each level, and one 1x1 output conv giving, per
stride-4 cell, 2 class heat-map logits (head, body) and the log distances (in cells) from the cell centre to the
box's left, top, right and bottom edges (TTFNet's dense regression, which trains faster than centre-only sizes).
Why this design for the camera: one output tensor of fixed size (no anchors, no NMS in the graph, so every op is a
plain conv/concat/add the MyriadX compiler accepts); stride 4 keeps a 20-ft head (about 12 px) 3 cells wide, and the
stride-32 encoder sees a whole near body (300 px). Decoding and NMS run on the host (``postprocess.py``).

Each of the tutorial's choices is a field of :class:`HeadBodyConfig`, so the benchmark can swap them one at a time:

==========  =====================================  ===============================================================
choice      baseline                               hardware-aware (edgedeploy.blocks)
==========  =====================================  ===============================================================
stem        two Conv+BN+ReLU stride 2 (1->12->c4)  SpaceToDepthStem(block 4) + 3x3 ConvBNAct: no 176x640 map
down        Conv+BN+ReLU 3x3 stride 2              DenseFeatBlock: strided conv to 3/4, 1x1 dense unit for the rest
mid (4, 8)  Conv+BN+ReLU 3x3                       PartialConv2d (3x3 on 1/4 of the maps) + 1x1 ConvBNAct
mid (16,32) Conv+BN+ReLU 3x3                       Conv+BN+ReLU 3x3 (``deep_mid``: cheap at 22x80 and 11x40)
neck        Conv+BN+ReLU 3x3                       Conv+BN+ReLU 3x3 (``neck``: it places the peaks)
up          ConvTranspose2d(4, stride 2) + ReLU    PixelShuffleUpsample (1x1 conv + depth-to-space) + ReLU
widths      (24, 48, 64, 96)                       (16, 48, 64, 96): small stride-4 maps, the memory-bound part
==========  =====================================  ===============================================================

Why the hardware-aware column keeps full 3x3 convs in two places: trained 300 steps on the same scenes, each swap
alone on the baseline cost (mAP@0.5 points on 60 held-out scenes) S2D -1.4, DenseFeat 0.0, PixelShuffle -3.6,
PartialConv (+1x1, FasterNet's pairing) everywhere -16.6; with the other swaps, a Ghost neck scored 13.5 below a
full 3x3 one. Measured on ONNX Runtime / OpenVINO CPU the final mix runs about 2x faster than the baseline
(benchmarks/bench_headbody.py).

Input: 1 x 1 x 352 x 1280 grayscale in [0, 1] (the tutorial's layer tables' input). Output: 1 x 6 x 88 x 320.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from ...blocks import ConvBNAct, DenseFeatBlock, GhostConv2d, PartialConv2d, PixelShuffleUpsample, SpaceToDepthStem
from ...errors import ConfigError, ShapeError

INPUT_SHAPE = (1, 1, 352, 1280)
STRIDE = 4
NUM_CLASSES = 2
OUT_CHANNELS = NUM_CLASSES + 4          # heat logits (head, body), log distances to the box's left/top/right/bottom
CHOICES = {"stem": ("conv", "s2d"), "down": ("conv", "dense", "ghost"), "mid": ("conv", "partial", "ghost"),
           "up": ("tconv", "pixelshuffle")}
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"stem": "conv", "down": "conv", "mid": "conv", "up": "tconv"},
    "hw-aware": {"stem": "s2d", "down": "dense", "mid": "partial", "up": "pixelshuffle", "deep_mid": "conv",
                 "neck": "conv", "widths": (16, 48, 64, 96)},
}


@dataclass(frozen=True)
class HeadBodyConfig:
    """Architecture: one field per hardware-aware choice (see the module docstring) and the channel widths."""

    stem: str = "conv"
    down: str = "conv"
    mid: str = "conv"
    up: str = "tconv"
    widths: tuple[int, int, int, int] = (24, 48, 64, 96)     # channels at strides 4, 8, 16, 32
    mid_blocks: int = 1                                     # stride-1 blocks per encoder level
    deep_mid: str | None = None      # mid block at strides 16 and 32 (None: ``mid``); cheap there, so can be richer
    neck: str | None = None          # the stride-4 block before the output (None: ``mid``); it places the peaks

    def __post_init__(self) -> None:
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"HeadBodyConfig.{key}={getattr(self, key)!r}; choose one of {list(allowed)}")
        w = tuple(self.widths)
        if len(w) != 4 or any(not isinstance(c, int) or c < 4 or c % 4 for c in w):
            raise ConfigError(f"widths must be 4 channel counts, each a multiple of 4 (got {self.widths!r})")
        object.__setattr__(self, "widths", w)
        for key in ("deep_mid", "neck"):
            if getattr(self, key) is not None and getattr(self, key) not in CHOICES["mid"]:
                raise ConfigError(f"HeadBodyConfig.{key}={getattr(self, key)!r}; choose one of "
                                  f"{list(CHOICES['mid'])} or None (= mid)")
        if not isinstance(self.mid_blocks, int) or self.mid_blocks < 0:
            raise ConfigError(f"mid_blocks must be an int >= 0 (got {self.mid_blocks!r})")

    @staticmethod
    def variant(name: str, **overrides: Any) -> HeadBodyConfig:
        """The named variant ('baseline' or 'hw-aware'), with fields overridden."""
        if name not in VARIANTS:
            raise ConfigError(f"unknown head/body variant {name!r}; choose one of {list(VARIANTS)}")
        return replace(HeadBodyConfig(**VARIANTS[name]), **overrides)

    @property
    def name(self) -> str:
        """'baseline', 'hw-aware' or a description of the mix (e.g. 'baseline+s2d')."""
        default = HeadBodyConfig()
        for vname, fields in VARIANTS.items():
            if all(getattr(self, k) == fields.get(k, getattr(default, k)) for k in _FIELDS):
                return vname
        swaps = [getattr(self, k) for k in CHOICES if getattr(self, k) != VARIANTS["baseline"][k]]
        swaps += [f"{k}={getattr(self, k)}" for k in ("deep_mid", "neck") if getattr(self, k) is not None]
        swaps += [f"widths={'x'.join(map(str, self.widths))}"] if self.widths != default.widths else []
        swaps += [f"mid_blocks={self.mid_blocks}"] if self.mid_blocks != default.mid_blocks else []
        return "baseline+" + "+".join(swaps)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields plus the variant name (per-level overrides only when set)."""
        d = {**asdict(self), "widths": list(self.widths), "name": self.name}
        return {k: v for k, v in d.items() if not (k in ("deep_mid", "neck") and v is None)}


# the tutorial's "choices impact": each hardware-aware choice alone on the baseline (config overrides)
SWAPS: dict[str, dict[str, Any]] = {
    "+S2D stem": {"stem": "s2d"}, "+DenseFeat down": {"down": "dense"}, "+Ghost down": {"down": "ghost"},
    "+PartialConv mid": {"mid": "partial"}, "+Ghost mid": {"mid": "ghost"}, "+PixelShuffle up": {"up": "pixelshuffle"},
    "+small stride-4 maps": {"widths": (16, 48, 64, 96)},
}
_FIELDS = ("stem", "down", "mid", "up", "widths", "mid_blocks", "deep_mid", "neck")


def _down(kind: str, cin: int, cout: int) -> nn.Module:
    if kind == "dense":
        return DenseFeatBlock(cin, cout, stride=2)
    if kind == "ghost":
        return GhostConv2d(cin, cout, 3, stride=2)
    return ConvBNAct(cin, cout, 3, 2)


def _mid(kind: str, ch: int) -> nn.Module:
    if kind == "partial":        # FasterNet's pairing: PConv mixes space on 1/4 of the maps, a 1x1 conv mixes channels
        return nn.Sequential(PartialConv2d(ch), ConvBNAct(ch, ch, 1))
    if kind == "ghost":          # a 3x3 conv makes half the maps, a depthwise 5x5 the other half
        return GhostConv2d(ch, ch, 3, stride=1)
    return ConvBNAct(ch, ch, 3)


class _Up(nn.Module):
    """x2 up-sampling of the deeper map, added to the encoder's map at that stride, then ReLU."""

    def __init__(self, kind: str, cin: int, cout: int) -> None:
        super().__init__()
        self.up = (PixelShuffleUpsample(cin, cout, 2) if kind == "pixelshuffle"
                   else nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))
        self.act = nn.ReLU(inplace=True)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.act(self.up(deep) + skip)


class HeadBodyNet(nn.Module):
    """Encoder (strides 4-32) + additive decoder to stride 4 + one 1x1 head: (N, 6, H/4, W/4) per the module doc."""

    def __init__(self, config: HeadBodyConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or HeadBodyConfig()
        c4, c8, c16, c32 = cfg.widths
        stem: list[nn.Module] = ([SpaceToDepthStem(1, c4, block_size=4, kernel_size=3)] if cfg.stem == "s2d"
                                 else [ConvBNAct(1, 12, 3, 2), ConvBNAct(12, c4, 3, 2)])
        mids = cfg.mid_blocks
        self.enc4 = nn.Sequential(*stem, *[_mid(cfg.mid, c4) for _ in range(mids)])
        self.enc8 = nn.Sequential(_down(cfg.down, c4, c8), *[_mid(cfg.mid, c8) for _ in range(mids)])
        deep = cfg.deep_mid or cfg.mid
        self.enc16 = nn.Sequential(_down(cfg.down, c8, c16), *[_mid(deep, c16) for _ in range(mids)])
        self.enc32 = nn.Sequential(_down(cfg.down, c16, c32), *[_mid(deep, c32) for _ in range(mids)])
        self.up16, self.up8, self.up4 = _Up(cfg.up, c32, c16), _Up(cfg.up, c16, c8), _Up(cfg.up, c8, c4)
        self.neck = _mid(cfg.neck or cfg.mid, c4)
        self.out = nn.Conv2d(c4, OUT_CHANNELS, 1)
        with torch.no_grad():                  # CenterNet's prior: heat maps start near 0.1, edges ~3 cells away
            self.out.bias.zero_()
            self.out.bias[:NUM_CLASSES] = -2.19
            self.out.bias[NUM_CLASSES:] = 1.0
            self.out.weight.mul_(0.1)

    def write_depthai_host(self, blob: Any) -> tuple[Any, ...]:
        """Write the host script that decodes and draws this detector's boxes next to its DepthAI pipeline (what
        ``export(..., to=[..., "blob", "depthai"])`` calls; see ``oak.py``)."""
        from .oak import write_oak_host

        return write_oak_host(blob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling() \
                and (x.dim() != 4 or x.shape[1] != 1 or x.shape[-2] % 32 or x.shape[-1] % 32):
            raise ShapeError(f"HeadBodyNet expects (N, 1, H, W) grayscale with H and W multiples of 32 "
                             f"(e.g. {INPUT_SHAPE}); got {tuple(x.shape)}")
        e4 = self.enc4(x)
        e8 = self.enc8(e4)
        e16 = self.enc16(e8)
        e32 = self.enc32(e16)
        y = self.up4(self.up8(self.up16(e32, e16), e8), e4)
        return self.out(self.neck(y))


def build(variant: str = "baseline", **overrides: Any) -> HeadBodyNet:
    """An untrained detector of the named variant (fields of HeadBodyConfig may be overridden)."""
    return HeadBodyNet(HeadBodyConfig.variant(variant, **overrides))
