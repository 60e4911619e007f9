"""What to cut: criteria (importance scores), registered by name, kept apart from coupling and cutting."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import ConfigError

# criterion -> (Torch-Pruning importance class, its keyword arguments) for channel/filter pruning
_STRUCTURED: dict[str, tuple[str, dict[str, Any]]] = {
    "l1": ("GroupMagnitudeImportance", {"p": 1}),
    "l2": ("GroupMagnitudeImportance", {"p": 2}),
    "taylor": ("GroupTaylorImportance", {}),
    "lamp": ("LAMPImportance", {"p": 2}),
    "bn_scale": ("BNScaleImportance", {}),
    "fpgm": ("FPGMImportance", {"p": 2}),
    "random": ("RandomImportance", {}),
}
# criteria that also rank single weights / weight shapes (element, shape); taylor needs gradients
MASK_CRITERIA = ("l1", "l2", "taylor", "random")
LAYER_CRITERIA = ("l1", "l2", "measured", "random")
GRADIENT_CRITERIA = ("taylor",)


def register_criterion(name: str, tp_class: str, **kwargs: Any) -> None:
    """Make a Torch-Pruning importance class (by name in ``torch_pruning.importance``) available as ``name``."""
    _STRUCTURED[name] = (tp_class, kwargs)


def _reduction(granularity: str) -> str:
    # filter: rank by the producing layer's own filters; channel: by the whole coupled group
    return "first" if granularity == "filter" else "mean"


def structured_importance(criterion: str, granularity: str) -> Any:
    """The Torch-Pruning Importance for a criterion name (unknown names list the valid ones)."""
    if criterion not in _STRUCTURED:
        raise ConfigError(f"criterion {criterion!r} is not available for {granularity} pruning; "
                          f"choose one of: {', '.join(sorted(_STRUCTURED))}")
    import torch_pruning as tp

    cls_name, kwargs = _STRUCTURED[criterion]
    if cls_name != "RandomImportance":
        kwargs = {**kwargs, "group_reduction": _reduction(granularity)}
    return getattr(tp.importance, cls_name)(**kwargs)


def check_criterion(criterion: str, granularity: str) -> None:
    """Raise ConfigError if ``criterion`` cannot rank units of ``granularity``."""
    if granularity in ("channel", "filter"):
        structured_importance(criterion, granularity)
        return
    valid = LAYER_CRITERIA if granularity == "layer" else MASK_CRITERIA
    if criterion not in valid:
        raise ConfigError(f"criterion {criterion!r} is not available for {granularity} pruning; "
                          f"choose one of: {', '.join(valid)}")


def accumulate_gradients(model: nn.Module, data: Iterable[Any] | None, criterion: str,
                         loss_fn: Callable[..., torch.Tensor] | None = None, max_batches: int = 8) -> None:
    """Fill ``.grad`` of every parameter from up to ``max_batches`` (x, y) batches (for gradient criteria)."""
    if criterion not in GRADIENT_CRITERIA:
        return
    if data is None:
        raise ConfigError(f"criterion {criterion!r} needs gradients: pass data=[(x, y), ...] to prune() "
                          "(a few labelled batches), or use criterion 'l1'/'l2'")
    loss_fn = loss_fn or F.cross_entropy
    model.zero_grad(set_to_none=True)
    was_training = model.training
    model.eval()
    seen = 0
    for i, batch in enumerate(data):
        if i >= max_batches:
            break
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ConfigError("data for gradient criteria must yield (inputs, labels) pairs")
        x, y = batch
        loss_fn(model(x), y).backward()
        seen += 1
    model.train(was_training)
    if seen == 0:
        raise ConfigError(f"criterion {criterion!r} needs at least one (x, y) batch in data; it was empty")


def weight_score(weight: torch.Tensor, grad: torch.Tensor | None, criterion: str,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-weight importance for mask granularities (element, shape); pruned weights score 0."""
    if criterion == "l2":
        return weight.detach().pow(2)
    if criterion == "taylor":
        grad = grad if grad is not None else torch.zeros_like(weight)
        return (weight.detach() * grad.detach()).abs()
    if criterion == "random":
        return torch.rand(weight.shape, generator=generator) * (weight.detach() != 0)
    return weight.detach().abs()
