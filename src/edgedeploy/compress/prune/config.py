"""PruneConfig: every pruning knob in one frozen dataclass, validated before any work starts."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError

TRANSFORMER_GRANULARITIES = ("head", "ffn", "transformer-layer")      # Hugging Face encoders (prune.transformer)
GRANULARITIES = ("element", "channel", "shape", "filter", "layer", *TRANSFORMER_GRANULARITIES)
SCOPES = ("global", "local")
SHAPE_PATTERNS = ("nm", "kernel", "column")


@dataclass(frozen=True)
class PruneConfig:
    """What to prune, how much, and how to rank it.

    granularity: element (single weights, masked), channel / filter (physically removed through
        Torch-Pruning's dependency graph; channel ranks a channel by its whole coupled group, filter
        by the producing layer's own filters only), shape (N:M, kernel positions or im2col columns,
        masked), layer (whole residual branches removed from the graph); on Hugging Face BERT-style
        encoders and ViTs: head (attention heads), ffn (FFN intermediate units), transformer-layer
        (whole encoder layers), physically removed and rebuilt from an updated config (``prune.transformer``).
    scope: global ranks every prunable unit of the network together; local prunes each layer
        (for layer granularity: each stage) by the same ratio.
    amount: fraction in [0, 1) to remove (channel ratio for channel/filter, weight fraction for
        element/shape, fraction of removable blocks for layer, of heads / FFN units for head / ffn, of
        encoder layers for transformer-layer).
    """

    granularity: str = "channel"
    scope: str = "local"
    amount: float = 0.5
    criterion: str = "l2"              # l1, l2, taylor, lamp, bn_scale, fpgm, random; layer also takes "measured";
    #                                    head / ffn / transformer-layer: l1, l2, taylor, random
    ignored: tuple[str, ...] = ()      # module names never pruned (their sub-modules too)
    targets: tuple[str, ...] = ()      # if given, prune only inside these modules (layer: these blocks)
    round_to: int | None = None        # keep channel counts a multiple of this (SIMD / NPU friendly)
    max_amount: float = 1.0            # cap on any single layer's channel ratio under global scope
    layer_amounts: Mapping[str, float] | None = None   # per-module channel ratio overriding `amount`
    steps: int = 1                     # iterative schedule: prune -> fine-tune -> prune ... in `steps` steps
    isomorphic: bool = False           # Torch-Pruning's isomorphic ranking (global scope only)
    shape_pattern: str = "nm"          # shape granularity: nm (N of every M kept), kernel (k x k positions), column
    nm: tuple[int, int] = (2, 4)       # N:M pattern: keep N largest of every M consecutive reduction weights
    ignore_output_layers: bool = True  # never change the model's output width (classifier rows)

    def __post_init__(self) -> None:
        _choice("granularity", self.granularity, GRANULARITIES)
        _choice("scope", self.scope, SCOPES)
        _choice("shape_pattern", self.shape_pattern, SHAPE_PATTERNS)
        _fraction("amount", self.amount)
        if not 0.0 < float(self.max_amount) <= 1.0:
            raise ConfigError(f"max_amount must be in (0, 1] (got {self.max_amount})")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"steps must be an integer >= 1 (got {self.steps!r})")
        if self.round_to is not None and (not isinstance(self.round_to, int) or self.round_to < 1):
            raise ConfigError(f"round_to must be None or an integer >= 1 (got {self.round_to!r})")
        for name, value in (self.layer_amounts or {}).items():
            _fraction(f"layer_amounts[{name!r}]", value)
        for name in ("ignored", "targets"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
            else:
                object.__setattr__(self, name, tuple(value))
        if self.granularity in TRANSFORMER_GRANULARITIES and self.criterion not in ("l2", "l1", "taylor", "random"):
            raise ConfigError(f"criterion {self.criterion!r} cannot rank {self.granularity} units; choose one of: "
                              "l2, l1, taylor, random")
        if self.granularity in ("head", "transformer-layer") and self.round_to not in (None, 1):
            raise ConfigError(f"round_to applies to channel counts and FFN widths, not to {self.granularity} "
                              "pruning; leave it None")
        n, m = self.nm
        if not (isinstance(n, int) and isinstance(m, int) and 0 < n < m):
            raise ConfigError(f"nm must be (N, M) integers with 0 < N < M, e.g. (2, 4) (got {self.nm!r})")
        if self.granularity == "shape" and self.shape_pattern == "nm":
            implied = (m - n) / m
            if abs(self.amount - implied) > 1e-6:
                raise ConfigError(f"shape pattern {n}:{m} removes exactly {implied:.2f} of the weights but amount is "
                                  f"{self.amount}; set amount={implied:g} or change nm")

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict of the knobs."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["layer_amounts"] = dict(self.layer_amounts or {})
        out["ignored"], out["targets"], out["nm"] = list(self.ignored), list(self.targets), list(self.nm)
        return out


def _choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(valid)}")


def _fraction(name: str, value: Any) -> None:
    try:
        ok = 0.0 <= float(value) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{name} must be a fraction in [0, 1) (got {value!r}); e.g. 0.5 removes half")


def resolve_names(model: Any, names: tuple[str, ...], what: str) -> list[Any]:
    """Map module names to modules, or raise naming the unknown one and close matches."""
    import difflib

    modules = dict(model.named_modules())
    out = []
    for name in names:
        if name not in modules:
            close = difflib.get_close_matches(name, [n for n in modules if n], n=4)
            hint = f"; did you mean: {', '.join(close)}" if close else ""
            raise ConfigError(f"{what} layer {name!r} does not exist in {type(model).__name__}{hint} "
                              "(names are those of model.named_modules())")
        out.append(modules[name])
    return out

