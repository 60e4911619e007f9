"""The tutorial's block-vs-Conv2D tables, recomputed with edgedeploy's profiler (thop conventions) beside its figures.

Every row is one layer at the head/body detector's 352x1280 input: Conv2D rows of the S2D, DenseFeat and Ghost
tables are stride-2 3x3 Conv+BN+ReLU (output 176x640), the PartialConv table's are stride 1. Counting like
pytorch-OpCounter: conv MACs = out elements x Cin/groups x kH x kW, BatchNorm 4 ops/element, ReLU 0; params
count BN gamma/beta only.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError

TUTORIAL_SIZE = (352, 1280)
CONV_ROW = "Conv2D + BN + ReLU"


@dataclass(frozen=True)
class TableRow:
    """One row: our MACs/params beside the tutorial's (None when the tutorial has no such row)."""

    layer: str
    in_ch: int
    out_ch: int
    macs: int
    params: int
    tutorial_macs: float | None = None
    tutorial_params: float | None = None
    note: str = ""                      # where a documented deviation is explained

    @property
    def macs_diff_pct(self) -> float | None:
        """(ours - tutorial) / tutorial in percent."""
        return None if not self.tutorial_macs else 100.0 * (self.macs - self.tutorial_macs) / self.tutorial_macs

    @property
    def params_diff_pct(self) -> float | None:
        """(ours - tutorial) / tutorial in percent."""
        return None if not self.tutorial_params else 100.0 * (self.params - self.tutorial_params) / self.tutorial_params


@dataclass(frozen=True)
class _Spec:
    title: str
    layer: str                           # the block's row label in the tutorial
    stride: int                          # of the Conv2D baseline
    build: Callable[[int, int, int], Any]
    rows: tuple[tuple[str, int, int, float, float], ...] = ()
    deviation: str = ""                  # module whose docstring explains rows off by > 2 %


def _s2d(i: int, o: int, s: int) -> Any:
    from .space_to_depth import SpaceToDepthStem
    return SpaceToDepthStem(i, o, block_size=s)


def _dense(i: int, o: int, s: int) -> Any:
    from .dense_feat import DenseFeatBlock
    return DenseFeatBlock(i, o, stride=s)


def _ghost(i: int, o: int, s: int) -> Any:
    from .ghost import GhostConv2d
    return GhostConv2d(i, o, 3, s)


def _partial(i: int, o: int, s: int) -> Any:
    from .partial_conv import PartialConv2d
    if i != o or s != 1:
        raise ConfigError(f"PartialConv2d keeps channels and resolution: use --in == --out (got {i} -> {o})")
    return PartialConv2d(i)


def _pixelshuffle(i: int, o: int, s: int) -> Any:
    from .pixel_shuffle import PixelShuffleUpsample
    return PixelShuffleUpsample(i, o, scale=s)


_C = CONV_ROW
SPECS: dict[str, _Spec] = {
    "s2d": _Spec("SPACE-TO-DEPTH VS. CONV2D", "Space-to-Depth", 2, _s2d, (
        (_C, 1, 32, 46.858e6, 352), (_C, 32, 64, 2.105e9, 18.56e3),
        ("Space-to-Depth", 1, 32, 26.04e6, 150), ("Space-to-Depth", 32, 64, 1.08e9, 5.89e3)),
        deviation="edgedeploy.blocks.space_to_depth"),
    "dense": _Spec("DENSEFEATBLOCK VS. CONV2D", "DenseFeatBlock", 2, _dense, (
        (_C, 32, 64, 2.105e9, 18.56e3), (_C, 64, 128, 8.362e9, 73.98e3),
        ("DenseFeatBlock", 32, 64, 1.764e9, 15.53e3), ("DenseFeatBlock", 64, 128, 7e9, 61.88e3))),
    "ghost": _Spec("GHOSTCONV2D VS. CONV2D", "GhostConv2D", 2, _ghost, (
        (_C, 32, 64, 2.105e9, 18.560e3), (_C, 64, 128, 8.362e9, 73.984e3),
        ("GhostConv2D", 32, 64, 1.157e9, 10.144e3), ("GhostConv2D", 64, 128, 4.390e9, 38.720e3))),
    "partial": _Spec("PARTIALCONV2D VS. CONV2D", "PartialConv2D", 1, _partial, (
        (_C, 32, 32, 4.21e9, 9.28e3), (_C, 64, 64, 16.725e9, 36.992e3),
        ("PartialConv2D", 32, 32, 320.79e6, 742), ("PartialConv2D", 64, 64, 1.157e9, 2.630e3)),
        deviation="edgedeploy.blocks.partial_conv"),
    "pixelshuffle": _Spec("PIXELSHUFFLE VS. TRANSPOSEDCONV2D", "PixelShuffle", 2, _pixelshuffle),
}


def fmt_count(n: float) -> str:
    """1234567 -> '1.235 M' (K/M/G with 3 decimals, plain below 1000)."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3f} {unit}"
    return f"{n:.0f}"


@dataclass
class BlockTable:
    """A comparison table (rows in the tutorial's layout) for one block at one input size."""

    title: str
    size: tuple[int, int]
    rows: list[TableRow]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"title": self.title, "size": list(self.size), "rows": [asdict(r) for r in self.rows]}

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"{self.title} (input {self.size[0]}x{self.size[1]}, thop counting)")
        has_tut = any(r.tutorial_macs for r in self.rows)
        notes = [r.note for r in self.rows if r.note]
        cols = ["Layer Type", "Input Channels", "Output Channels", "MAC Operations", "Number of Parameters"]
        cols += ["tutorial MACs", "tutorial params", "MACs diff", "params diff"] if has_tut else []
        for col in cols:
            t.add_column(col, justify="left" if col == "Layer Type" else "right", no_wrap=True)
        pct = lambda v: "" if v is None else f"{v:+.2f}%"  # noqa: E731
        for r in self.rows:
            cells = [r.layer + (" *" if r.note else ""), str(r.in_ch), str(r.out_ch), fmt_count(r.macs),
                     fmt_count(r.params)]
            if has_tut:
                cells += [fmt_count(r.tutorial_macs) if r.tutorial_macs else "",
                          fmt_count(r.tutorial_params) if r.tutorial_params else "",
                          pct(r.macs_diff_pct), pct(r.params_diff_pct)]
            t.add_row(*cells)
        if notes:
            t.caption = f"* more than 2% off the tutorial: {notes[0]} explains which design choice it implies"
        return t

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=180, file=io.StringIO())
        console.print(self)
        return console.file.getvalue()


def _spec(block: str) -> _Spec:
    if block not in SPECS:
        raise ConfigError(f"unknown block {block!r}; choose one of {sorted(SPECS)}")
    return SPECS[block]


def _baseline(block: str, in_ch: int, out_ch: int, stride: int) -> Any:
    from torch import nn

    from .conv_bn_act import ConvBNAct
    if block == "pixelshuffle":
        return nn.ConvTranspose2d(in_ch, out_ch, 3, stride, 1, output_padding=stride - 1)
    return ConvBNAct(in_ch, out_ch, 3, stride)


def _row(block: str, layer: str, in_ch: int, out_ch: int, size: tuple[int, int]) -> TableRow:
    from ._cost import cost

    spec = _spec(block)
    is_conv = layer != spec.layer
    module = _baseline(block, in_ch, out_ch, spec.stride) if is_conv else spec.build(in_ch, out_ch, spec.stride)
    c = cost(module, (1, in_ch, *size))
    label = ("TransposedConv2D" if block == "pixelshuffle" else CONV_ROW) if is_conv else spec.layer
    tut = next((t for t in spec.rows if t[:3] == (label, in_ch, out_ch)), None) if size == TUTORIAL_SIZE else None
    row = TableRow(label, in_ch, out_ch, c.macs, c.params, *(tut[3:] if tut else (None, None)))
    off = [d for d in (row.macs_diff_pct, row.params_diff_pct) if d is not None and abs(d) > 2.0]
    return TableRow(**{**asdict(row), "note": f"the docstring of {spec.deviation}" if off and spec.deviation else ""})


def compare(block: str, in_ch: int, out_ch: int, size: tuple[int, int] = TUTORIAL_SIZE) -> BlockTable:
    """Conv2D(+BN+ReLU) baseline vs ``block`` ('s2d', 'dense', 'ghost', 'partial', 'pixelshuffle') at one size."""
    spec = _spec(block)
    for key, value in (("in_ch", in_ch), ("out_ch", out_ch)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key} must be a positive int (got {value!r})")
    if len(size) != 2 or any(int(d) < 2 for d in size):
        raise ConfigError(f"size must be (H, W) with H, W >= 2 (got {size!r})")
    size = (int(size[0]), int(size[1]))
    if spec.stride > 1 and block in ("s2d",) and (size[0] % spec.stride or size[1] % spec.stride):
        raise ConfigError(f"--size {size[0]}x{size[1]} must be divisible by {spec.stride} for {block}")
    rows = [_row(block, "conv", in_ch, out_ch, size), _row(block, spec.layer, in_ch, out_ch, size)]
    return BlockTable(spec.title, size, rows)


def tutorial_table(block: str) -> BlockTable:
    """The tutorial's table for ``block`` ('s2d', 'dense', 'ghost', 'partial'), every row recomputed."""
    spec = _spec(block)
    if not spec.rows:
        raise ConfigError(f"the tutorial has no MAC table for {block!r}; choose one of "
                          f"{sorted(k for k, s in SPECS.items() if s.rows)}")
    return BlockTable(spec.title, TUTORIAL_SIZE, [_row(block, r[0], r[1], r[2], TUTORIAL_SIZE) for r in spec.rows])


def tutorial_tables() -> list[BlockTable]:
    """All four tutorial tables (S2D, DenseFeat, Ghost, PartialConv vs Conv2D)."""
    return [tutorial_table(name) for name, spec in SPECS.items() if spec.rows]
