"""``swap(model, rules)``: replace layers by hardware-aware blocks, rule by rule, with a table of what changed.

New blocks are freshly initialized: fine-tune (or distill) the swapped model before use.
"""
from __future__ import annotations

import abc
import copy
import io
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ModelRunError
from ._cost import as_shape, cost, run_checked
from .conv_bn_act import ConvBNAct
from .dense_feat import DenseFeatBlock
from .espcn import ESPCN
from .ghost import GhostConv2d
from .partial_conv import PartialConv2d
from .pixel_shuffle import PixelShuffleUpsample
from .mobileone import MobileOneBlock
from .repvgg import RepVGGBlock
from .space_to_depth import SpaceToDepthStem

SWAP_RULES: dict[str, "SwapRule"] = {}
# our own blocks are never rewritten from the inside
_BLOCKS = (SpaceToDepthStem, DenseFeatBlock, GhostConv2d, PartialConv2d, PixelShuffleUpsample, ESPCN, RepVGGBlock,
           MobileOneBlock)
_ACT_NAMES = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.SiLU: "silu", nn.Hardswish: "hardswish", nn.GELU: "gelu"}


def register_rule(name: str) -> Callable[[type], type]:
    """Class decorator: register a SwapRule subclass under ``name``."""
    def deco(cls: type) -> type:
        SWAP_RULES[name] = cls()
        return cls
    return deco


class SwapRule(abc.ABC):
    """A rule: which layer it matches (``matches``) and what replaces it (``build``, given the act to keep)."""

    @abc.abstractmethod
    def matches(self, module: nn.Module, is_first_conv: bool) -> bool:
        """True when ``module`` is a layer this rule replaces."""

    @abc.abstractmethod
    def build(self, module: nn.Module, act: str | None) -> nn.Module:
        """The replacement block for ``module``, ending in activation ``act``."""


def _plain_conv(m: nn.Module, k: int) -> bool:
    return (type(m) is nn.Conv2d and m.kernel_size == (k, k) and m.groups == 1 and m.dilation == (1, 1)
            and m.padding == (k // 2, k // 2))


@register_rule("stem-s2d")
class StemToS2D(SwapRule):
    """The model's first conv, if strided (2x2, k in 2..4): space-to-depth 2x + 1x1 ConvBNAct."""

    def matches(self, m: nn.Module, is_first_conv: bool) -> bool:  # noqa: D102
        return (is_first_conv and type(m) is nn.Conv2d and m.stride == (2, 2) and m.groups == 1
                and m.kernel_size[0] == m.kernel_size[1] in (2, 3, 4))

    def build(self, m: nn.Module, act: str | None) -> nn.Module:  # noqa: D102
        return SpaceToDepthStem(m.in_channels, m.out_channels, 2, 1, act=act)


@register_rule("convtranspose-pixelshuffle")
class TransposeToPixelShuffle(SwapRule):
    """ConvTranspose2d that up-samples exactly stride x: conv + PixelShuffle(stride)."""

    def matches(self, m: nn.Module, is_first_conv: bool) -> bool:  # noqa: D102
        if type(m) is not nn.ConvTranspose2d or m.groups != 1 or m.dilation != (1, 1) or m.stride[0] != m.stride[1]:
            return False
        return all(k - 2 * p + op == s for k, p, op, s in zip(m.kernel_size, m.padding, m.output_padding, m.stride))

    def build(self, m: nn.Module, act: str | None) -> nn.Module:  # noqa: D102
        k = 1 if m.kernel_size[0] <= m.stride[0] else 3
        return PixelShuffleUpsample(m.in_channels, m.out_channels, m.stride[0], k, act=act, bias=m.bias is not None)


@register_rule("conv3x3-ghost")
class Conv3x3ToGhost(SwapRule):
    """Plain 3x3 conv (any stride): GhostConv2d (half primary 3x3, half 5x5 depthwise)."""

    def matches(self, m: nn.Module, is_first_conv: bool) -> bool:  # noqa: D102
        return _plain_conv(m, 3) and m.out_channels >= 2

    def build(self, m: nn.Module, act: str | None) -> nn.Module:  # noqa: D102
        return GhostConv2d(m.in_channels, m.out_channels, 3, m.stride[0], act=act)


@register_rule("conv3x3-partial")
class Conv3x3ToPartial(SwapRule):
    """Plain 3x3 stride-1 conv with in == out >= 4 channels: PartialConv2d (conv on a quarter of the channels)."""

    def matches(self, m: nn.Module, is_first_conv: bool) -> bool:  # noqa: D102
        return _plain_conv(m, 3) and m.stride == (1, 1) and m.in_channels == m.out_channels >= 4

    def build(self, m: nn.Module, act: str | None) -> nn.Module:  # noqa: D102
        return PartialConv2d(m.in_channels, act=act)


@dataclass(frozen=True)
class SwapChange:
    """One replaced layer and its cost before and after (thop counting at its input shape)."""

    name: str
    rule: str
    before: str
    after: str
    input_shape: tuple[int, ...]
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int


@dataclass
class SwapResult:
    """The swapped model, the changes and whole-model totals."""

    model: nn.Module
    changes: list[SwapChange]
    totals: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the model)."""
        return {"changes": [asdict(c) for c in self.changes], "totals": dict(self.totals)}

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"swap: {len(self.changes)} layer(s) replaced")
        for col in ("layer", "rule", "before", "after", "MACs before", "MACs after", "params before", "params after"):
            t.add_column(col, justify="right" if "MACs" in col or "params" in col else "left")
        for c in self.changes:
            t.add_row(c.name, c.rule, c.before, c.after, f"{c.macs_before:,}", f"{c.macs_after:,}",
                      f"{c.params_before:,}", f"{c.params_after:,}")
        if self.totals:
            tt = self.totals
            t.add_row("model", "", "", "", f"{tt['macs_before']:,}", f"{tt['macs_after']:,}",
                      f"{tt['params_before']:,}", f"{tt['params_after']:,}", style="bold")
        return t

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=160, file=io.StringIO())
        console.print(self)
        return console.file.getvalue()


def _targets(model: nn.Module, rules: Sequence[str]) -> list[tuple[str, str, nn.Module, str | None]]:
    """(name of the module to replace, rule, the conv it matched, act to keep) for every match, first rule wins."""
    skip: list[str] = []
    out, first_conv_seen = [], False
    for name, m in model.named_modules():
        if any(name.startswith(s + ".") for s in skip):
            continue
        if isinstance(m, _BLOCKS) and m is not model:
            skip.append(name)
            first_conv_seen = True         # a block before any conv is the stem
            continue
        if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            continue
        is_first = isinstance(m, nn.Conv2d) and not first_conv_seen
        first_conv_seen = first_conv_seen or isinstance(m, nn.Conv2d)
        rule = next((r for r in rules if SWAP_RULES[r].matches(m, is_first)), None)
        if rule is None:
            continue
        parent_name = name.rpartition(".")[0]
        parent = model.get_submodule(parent_name) if parent_name else model
        if isinstance(parent, ConvBNAct) and parent.conv is m:
            out.append((parent_name, rule, m, _ACT_NAMES.get(type(parent.act))))
        else:
            out.append((name, rule, m, None))
    return out


def _capture_shapes(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name: str) -> Callable[..., None]:
        def record(module: nn.Module, args: tuple[Any, ...]) -> None:
            shapes.setdefault(name, tuple(args[0].shape))
        return record

    hooks = [model.get_submodule(n).register_forward_pre_hook(hook(n)) for n in names]
    try:
        y = run_checked(model, x, "swap")
    finally:
        for h in hooks:
            h.remove()
    shapes["__output__"] = tuple(y.shape)
    return shapes


def swap(model: nn.Module, rules: Sequence[str] | str, input_shape: tuple[int, ...] | str,
         counting: str = "thop") -> SwapResult:
    """Return a copy of ``model`` with layers replaced by ``rules`` (see SWAP_RULES) and a table of the changes."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"swap() takes a torch.nn.Module, not {type(model).__name__}")
    if isinstance(rules, str):
        rules = [rules]
    unknown = [r for r in rules if r not in SWAP_RULES]
    if unknown or not rules:
        raise ConfigError(f"unknown swap rule(s) {unknown or rules!r}; choose from {sorted(SWAP_RULES)}")
    shape = as_shape(input_shape, "swap")
    new = copy.deepcopy(model)
    was_training = new.training
    new.eval()
    targets = _targets(new, rules)
    x = torch.zeros(shape)
    shapes = _capture_shapes(new, [t[0] for t in targets], x)
    changes = []
    for name, rule, conv, act in targets:
        old = new.get_submodule(name)
        block = SWAP_RULES[rule].build(conv, act).eval()
        cb, ca = cost(old, shapes[name], counting), cost(block, shapes[name], counting)
        parent_name, _, child = name.rpartition(".")
        if not name:                      # the model is itself the layer
            new = block
        else:
            setattr(new.get_submodule(parent_name) if parent_name else new, child, block)
        changes.append(SwapChange(name, rule, type(old).__name__, type(block).__name__, shapes[name],
                                  cb.macs, ca.macs, cb.params, ca.params))
    y = run_checked(new, x, "swap (after the swap)")
    if tuple(y.shape) != shapes["__output__"]:
        raise ModelRunError(f"swap changed the output shape {shapes['__output__']} -> {tuple(y.shape)}; "
                            f"drop the rule that caused it from {list(rules)}")
    tb, ta = cost(model, shape, counting), cost(new, shape, counting)
    new.train(was_training)
    return SwapResult(new, changes, {"macs_before": tb.macs, "macs_after": ta.macs,
                                     "params_before": tb.params, "params_after": ta.params})
