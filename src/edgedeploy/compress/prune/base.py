"""The granularity backend interface, its registry, and helpers the backends share."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError, ModelRunError
from ._cost import as_tuple
from .config import PruneConfig
from .report import LayerChange

WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass
class PruneContext:
    """Everything a backend may use besides the model and config."""

    example_inputs: Any
    ignored: list[nn.Module]                  # modules (and their children) never pruned
    data: Iterable[Any] | None = None         # (x, y) batches for gradient criteria
    loss_fn: Callable[..., torch.Tensor] | None = None
    eval_fn: Callable[[nn.Module], float] | None = None   # higher is better; for criterion "measured"


class Granularity(ABC):
    """One way to prune: built on a model copy, stepped along the schedule, then finished."""

    def __init__(self, model: nn.Module, config: PruneConfig, ctx: PruneContext) -> None:
        self.model, self.config, self.ctx = model, config, ctx

    @abstractmethod
    def step(self, fraction: float) -> None:
        """Prune up to ``fraction`` of the final amount (1.0 on the last step)."""

    @abstractmethod
    def finish(self) -> nn.Module:
        """Make the pruning permanent and return the final model."""

    @abstractmethod
    def changes(self) -> tuple[list[LayerChange], list[str], list[str]]:
        """Per-layer changes, names of removed blocks, and notes for the report."""


_BACKENDS: dict[str, type[Granularity]] = {}


def register_granularity(*names: str) -> Callable[[type[Granularity]], type[Granularity]]:
    """Class decorator registering a backend under one or more granularity names."""
    def deco(cls: type[Granularity]) -> type[Granularity]:
        for n in names:
            _BACKENDS[n] = cls
        return cls
    return deco


def backend_for(granularity: str) -> type[Granularity]:
    """The backend class for a granularity name."""
    if granularity not in _BACKENDS:
        raise ConfigError(f"unknown granularity {granularity!r}; choose one of: {', '.join(sorted(_BACKENDS))}")
    return _BACKENDS[granularity]


def is_ignored(module: nn.Module, ignored: list[nn.Module]) -> bool:
    """True if ``module`` is one of, or inside one of, the ignored modules."""
    return any(module is m or any(module is s for s in m.modules()) for m in ignored)


def weighted_layers(model: nn.Module, ignored: list[nn.Module]) -> list[tuple[str, nn.Module]]:
    """(name, module) of every conv/linear layer not ignored."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHTED) and not is_ignored(m, ignored)]


def output_layers(model: nn.Module, example_inputs: Any) -> list[nn.Module]:
    """Layers whose width is the model's output width: the leaf that returns each output, and the last weighted
    layer with as many channels as that output (a head that ends in softmax, flatten or dropout)."""
    produced: dict[int, nn.Module] = {}
    weighted: list[tuple[nn.Module, int]] = []

    def hook(mod: nn.Module, _i: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            produced[out.untyped_storage().data_ptr()] = mod
            if isinstance(mod, WEIGHTED) and out.dim() >= 2:
                weighted.append((mod, int(out.shape[1] if out.dim() != 3 else out.shape[-1])))

    hooks = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            out = run(model, example_inputs)
    finally:
        for h in hooks:
            h.remove()
    found: list[nn.Module] = []
    for o in (out if isinstance(out, (tuple, list)) else (out,)):
        if not isinstance(o, torch.Tensor):
            continue
        direct = produced.get(o.untyped_storage().data_ptr())
        width = int(o.shape[1] if o.dim() != 3 else o.shape[-1]) if o.dim() >= 2 else None
        last = next((m for m, c in reversed(weighted) if c == width), None)
        found += [m for m in (direct, last) if m is not None and not any(m is f for f in found)]
    return found


def run(model: nn.Module, example_inputs: Any, pruned: bool = False) -> Any:
    """Forward pass on the example inputs, with a clear error if it fails."""
    try:
        return model(*as_tuple(example_inputs))
    except Exception as exc:  # noqa: BLE001 - any failure here is the model/input pair
        if pruned:
            raise ModelRunError(f"the pruned {type(model).__name__} no longer runs ({type(exc).__name__}: {exc}); "
                                "a module probably keeps a channel count in a plain attribute that pruning cannot "
                                "update: add that module to PruneConfig.ignored") from exc
        raise ModelRunError(f"{type(model).__name__} failed on the example inputs: {type(exc).__name__}: {exc}; "
                            "pass example_inputs that the model accepts") from exc


def output_shapes(model: nn.Module, example_inputs: Any, pruned: bool = False) -> list[tuple[int, ...]]:
    """Shapes of the model's output tensors."""
    with torch.no_grad():
        out = run(model, example_inputs, pruned)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [tuple(o.shape) for o in outs if isinstance(o, torch.Tensor)]
