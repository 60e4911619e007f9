"""Element and shape pruning: masks (torch.nn.utils.prune) ranked by a criterion, made permanent at the end.

Units: element = one weight; shape "kernel" = one k x k position of a conv (all filters, all inputs);
shape "column" = one (input, ky, kx) im2col column across all filters; shape "nm" = keep N of every
M consecutive input-channel weights (the 2:4 pattern sparse tensor cores run).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune as tprune

from ...errors import ConfigError
from .base import Granularity, PruneContext, register_granularity, run, weighted_layers
from .config import PruneConfig, resolve_names
from .importance import accumulate_gradients, weight_score
from .report import LayerChange

DENSE_NOTE = ("zeros are still stored and multiplied densely: ONNX Runtime, OpenVINO CPU and most NPUs run this "
              "model at the same speed as before; the gain is the sparse-storage size (and speed only on "
              "sparsity-aware kernels, see effective MACs)")


def _current(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(masked weight, its gradient) whether or not a mask is attached yet."""
    if hasattr(module, "weight_orig"):
        return module.weight_orig.detach() * module.weight_mask, module.weight_orig.grad
    return module.weight.detach(), module.weight.grad


def _unit_view(w: torch.Tensor, pattern: str) -> torch.Tensor:
    """Scores reshaped so the last dim indexes units and dim 0 the weights inside a unit."""
    if pattern == "element":
        return w.reshape(1, -1)
    if pattern == "kernel":                     # (out*in, k*k): one unit per kernel position
        return w.reshape(w.shape[0] * w.shape[1], -1)
    return w.reshape(w.shape[0], -1)            # column: (out, in*k*k)


def _select(per_layer: list[torch.Tensor], fraction: float) -> list[torch.Tensor]:
    """Keep-masks over units: drop the lowest-scoring units until `fraction` of the weights is gone."""
    means = [s.mean(0) for s in per_layer]
    sizes = [torch.full_like(m, s.shape[0]) for m, s in zip(means, per_layer)]
    flat, flat_sizes = torch.cat(means), torch.cat(sizes)
    order = torch.argsort(flat, stable=True)
    budget = fraction * float(flat_sizes.sum())
    n_drop = int((torch.cumsum(flat_sizes[order], 0) <= budget + 1e-6).sum())
    keep = torch.ones_like(flat, dtype=torch.bool)
    keep[order[:n_drop]] = False
    return list(torch.split(keep, [m.numel() for m in means]))


@register_granularity("element", "shape")
class MaskPruning(Granularity):
    """Zero weights through masks (unstructured or shape-structured); the model keeps its shapes."""

    def __init__(self, model: nn.Module, config: PruneConfig, ctx: PruneContext) -> None:
        super().__init__(model, config, ctx)
        self.pattern = "element" if config.granularity == "element" else config.shape_pattern
        inside = resolve_names(model, config.targets, "target")
        layers = [(n, m) for n, m in weighted_layers(model, ctx.ignored)
                  if not inside or any(m is s for t in inside for s in t.modules())]
        self.skipped: list[str] = []
        self.layers = []
        for name, m in layers:
            reason = self._cannot(m)
            (self.skipped.append(f"{name} ({reason})") if reason else self.layers.append((name, m)))
        if not self.layers:
            raise ConfigError(f"no layer of {type(model).__name__} can take {self._label()} pruning"
                              + (f": {'; '.join(self.skipped)}" if self.skipped else " (all conv/linear layers ignored)"))
        self.before = {n: (int(torch.count_nonzero(m.weight)), m.weight.numel()) for n, m in self.layers}
        self.layer_macs = self._dense_macs()
        self.generator = torch.Generator().manual_seed(0)

    def _label(self) -> str:
        return "element" if self.pattern == "element" else f"shape ({self.pattern})"

    def _cannot(self, m: nn.Module) -> str | None:
        n, mm = self.config.nm
        if self.pattern == "kernel" and (isinstance(m, nn.Linear) or m.weight[0, 0].numel() == 1):
            return "no spatial kernel positions"
        if self.pattern == "nm" and m.weight.shape[1] % mm:
            return f"{m.weight.shape[1]} input channels is not a multiple of M={mm}"
        return None

    def _dense_macs(self) -> dict[str, int]:
        macs: dict[str, int] = {}
        hooks = [m.register_forward_hook(lambda mod, _i, out, name=name: macs.__setitem__(
            name, macs.get(name, 0) + out.numel() * mod.weight[0].numel())) for name, m in self.layers]
        try:
            with torch.no_grad():
                run(self.model, self.ctx.example_inputs)
        finally:
            for h in hooks:
                h.remove()
        return macs

    def step(self, fraction: float) -> None:
        accumulate_gradients(self.model, self.ctx.data, self.config.criterion, self.ctx.loss_fn)
        scores = [weight_score(*_current(m), self.config.criterion, self.generator) for _, m in self.layers]
        if self.pattern == "nm":
            masks = [self._nm_mask(s) for s in scores]
        else:
            target = self.config.amount * fraction
            views = [_unit_view(s, self.pattern) for s in scores]
            if self.config.scope == "global":
                keeps = _select(views, target)
            else:
                keeps = [k for v in views for k in _select([v], target)]
            masks = [keep.expand_as(v).reshape(s.shape) for keep, v, s in zip(keeps, views, scores)]
        for (_, m), mask in zip(self.layers, masks):
            tprune.custom_from_mask(m, "weight", mask.to(m.weight.dtype))
        self.model.zero_grad(set_to_none=True)

    def _nm_mask(self, score: torch.Tensor) -> torch.Tensor:
        n, m = self.config.nm
        perm = score.movedim(1, -1) if score.dim() > 2 else score          # (out, ..., in)
        groups = perm.reshape(-1, m)
        idx = torch.topk(groups, n, dim=1).indices
        keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, idx, True)
        return keep.reshape(perm.shape).movedim(-1, 1) if score.dim() > 2 else keep.reshape(score.shape)

    def finish(self) -> nn.Module:
        for _, m in self.layers:
            if tprune.is_pruned(m) and hasattr(m, "weight_mask"):
                tprune.remove(m, "weight")
        return self.model

    @property
    def effective_macs_saved(self) -> int:
        """MACs a sparsity-aware kernel would skip (each layer's dense MACs times its zero fraction)."""
        saved = 0.0
        for name, m in self.layers:
            w = _current(m)[0]
            saved += self.layer_macs.get(name, 0) * (1.0 - int(torch.count_nonzero(w)) / w.numel())
        return int(saved)

    def changes(self) -> tuple[list[LayerChange], list[str], list[str]]:
        rows = []
        for name, m in self.layers:
            w = _current(m)[0]
            rows.append(LayerChange(name, type(m).__name__, "weights", self.before[name],
                                    (int(torch.count_nonzero(w)), w.numel())))
        notes = [DENSE_NOTE]
        if self.pattern == "nm":
            n, mm = self.config.nm
            notes.append(f"{n}:{mm} pattern along input channels: runs faster only on sparse tensor cores "
                         "(e.g. NVIDIA Ampere and later); scope has no effect on a fixed N:M pattern")
        if self.skipped:
            notes.append(f"left dense: {'; '.join(self.skipped)}")
        return rows, [], notes
