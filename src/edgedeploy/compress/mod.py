"""Mixture of Depths (Raposo et al. 2024) for vision transformers: each wrapped block processes only the top-k
tokens a router picks (k = capacity x tokens, fixed, so shapes stay static: TopK, then Gather and ScatterND of
whole token rows in ONNX); the other tokens take the residual path unchanged. The block's update is scaled by
the router's weight (sigmoid of its score), so the router gets a gradient and learns which tokens matter.
Rows are moved with index_select / index_copy on the (batch x tokens, channels) view: on ONNX Runtime this is
~8% faster per forward than gather / scatter with an index expanded over channels (GatherElements /
ScatterElements), measured on the digits ViT.
"""
from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ShapeError


class MoDBlock(nn.Module):
    """Route the top ``capacity`` fraction of tokens of a (B, T, C) sequence through ``block``; the rest skip it.

    ``block`` must be a residual transformer block mapping (B, k, C) -> (B, k, C) (its output includes its input).
    """

    def __init__(self, block: nn.Module, capacity: float, dim: int | None = None) -> None:
        super().__init__()
        if not 0.0 < capacity <= 1.0:
            raise ConfigError(f"MoD capacity is the fraction of tokens a block processes, in (0, 1]; got {capacity}")
        dim = dim or _width(block)
        self.block = block
        self.capacity = float(capacity)
        self.router = nn.Linear(dim, 1)
        nn.init.normal_(self.router.weight, std=0.02)
        nn.init.zeros_(self.router.bias)

    def tokens(self, seq_len: int) -> int:
        """k: the number of tokens routed through the block for a sequence of ``seq_len`` tokens."""
        return max(1, min(seq_len, round(self.capacity * seq_len)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ShapeError(f"MoDBlock routes (batch, tokens, channels) sequences, got shape {tuple(x.shape)}")
        b, t, c = x.shape
        k = self.tokens(t)
        score = self.router(x).squeeze(-1)                       # (B, T)
        weight, idx = torch.topk(score, k, dim=1)                # static k: a TopK node with a constant K
        rows = (idx + torch.arange(b, device=x.device).unsqueeze(1) * t).reshape(b * k)
        flat = x.reshape(b * t, c)
        chosen = flat.index_select(0, rows).reshape(b, k, c)     # (B, k, C)
        update = (self.block(chosen) - chosen) * torch.sigmoid(weight).unsqueeze(-1)
        out = flat.index_copy(0, rows, (chosen + update).reshape(b * k, c))   # skipped tokens keep their value
        return out.reshape(b, t, c)


def _width(block: nn.Module) -> int:
    """The channel width of a transformer block: its first LayerNorm's size, else its first Linear's input."""
    for m in block.modules():
        if isinstance(m, nn.LayerNorm):
            return int(m.normalized_shape[-1])
    for m in block.modules():
        if isinstance(m, nn.Linear):
            return int(m.in_features)
    raise ConfigError(f"cannot tell the token width of {type(block).__name__}; pass MoDBlock(block, capacity, dim=C)")


@dataclass(frozen=True)
class MoDConfig:
    """``capacity``: fraction of tokens each routed block processes; ``blocks``: module names to route (a
    ModuleList/Sequential name routes each of its children); ``skip_first``: leave that many of them dense, so
    routers read tokens that already saw their context; ``every``: then route every n-th (the paper routes every
    other block, n=2)."""

    capacity: float = 0.5
    blocks: tuple[str, ...] = ("blocks",)
    skip_first: int = 0
    every: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.capacity <= 1.0:
            raise ConfigError(f"MoD capacity must be in (0, 1], got {self.capacity}")
        if isinstance(self.blocks, str):
            object.__setattr__(self, "blocks", (self.blocks,))
        if not self.blocks:
            raise ConfigError("MoDConfig.blocks is empty; name the transformer blocks (or their ModuleList)")
        if not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"every must be an integer >= 1, got {self.every!r}")
        if not isinstance(self.skip_first, int) or self.skip_first < 0:
            raise ConfigError(f"skip_first must be an integer >= 0, got {self.skip_first!r}")


@dataclass
class MoDResult:
    """The routed model (a copy), which blocks were wrapped, and MACs before/after when an example was given."""

    model: nn.Module
    routed: list[str]
    capacity: float
    macs_dense: int | None = None
    macs_routed: int | None = None
    unsupported: dict[str, int] = field(default_factory=dict)   # ops the profiler had no rule for

    @property
    def macs_ratio(self) -> float | None:
        """MACs of the routed model over the dense one."""
        return self.macs_routed / self.macs_dense if self.macs_dense and self.macs_routed is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"routed": self.routed, "capacity": self.capacity, "macs_dense": self.macs_dense,
                "macs_routed": self.macs_routed, "macs_ratio": self.macs_ratio, "unsupported": self.unsupported}

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"Mixture of Depths: {len(self.routed)} block(s) routed at capacity {self.capacity:g}",
                  show_header=False)
        t.add_row("routed", ", ".join(self.routed))
        if self.macs_dense is not None and self.macs_routed is not None:
            t.add_row("MACs", f"{self.macs_dense:,} -> {self.macs_routed:,} (x{self.macs_ratio:.3f})")
        if self.unsupported:
            t.add_row("[yellow]not counted[/]", ", ".join(f"{k} x{v}" for k, v in self.unsupported.items()))
        return t


def _targets(model: nn.Module, names: tuple[str, ...]) -> list[str]:
    modules = dict(model.named_modules())
    out = []
    for n in names:
        if n not in modules or not n:
            close = difflib.get_close_matches(n, [k for k in modules if k], n=3)
            raise ConfigError(f"module {n!r} does not exist in {type(model).__name__}"
                              + (f"; did you mean: {', '.join(close)}" if close else ""))
        m = modules[n]
        out += [f"{n}.{c}" for c, _ in m.named_children()] if isinstance(m, (nn.ModuleList, nn.Sequential)) else [n]
    return out


def _set(model: nn.Module, name: str, value: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, value)


def apply_mod(model: nn.Module, config: MoDConfig | None = None, example_inputs: Any = None) -> MoDResult:
    """Wrap the named transformer blocks of a copy of ``model`` in ``MoDBlock``; profile MACs when given an example."""
    cfg = config or MoDConfig()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"apply_mod needs a torch nn.Module, got {type(model).__name__}")
    routed_model = copy.deepcopy(model)
    names = _targets(routed_model, cfg.blocks)[cfg.skip_first::cfg.every]
    if not names:
        raise ConfigError(f"no block left to route: {cfg.blocks} with skip_first={cfg.skip_first}")
    for n in names:
        _set(routed_model, n, MoDBlock(routed_model.get_submodule(n), cfg.capacity))
    result = MoDResult(routed_model, names, cfg.capacity)
    if example_inputs is not None:
        from ..metrics.profile import profile

        dense, routed = profile(model, example_inputs), profile(routed_model, example_inputs)
        result.macs_dense, result.macs_routed, result.unsupported = dense.macs, routed.macs, dict(routed.unsupported)
    return result
