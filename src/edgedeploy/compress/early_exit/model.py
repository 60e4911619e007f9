"""``add_early_exits``: exit heads after chosen modules of any traceable backbone; stop early at inference."""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError, ModelRunError, ShapeError
from .decide import CRITERIA, ExitPrediction, merge, run_staged
from .heads import HeadFactory, head_factory
from .split import Split, split


class EarlyExitModel(nn.Module):
    """A backbone cut into stages with an exit after each; ``forward`` computes every exit (training),
    ``predict`` stops each sample at its first confident exit (later stages do not run for it)."""

    def __init__(self, parts: Split, stage_macs: Sequence[int], full_macs: int,
                 class_names: Sequence[str] | None = None, criterion: str = "confidence") -> None:
        super().__init__()
        self.stages = nn.ModuleList(parts.stages)   # fx graph modules: (*carry_in) -> (*carry_out, logits)
        self.register_buffer("thresholds", torch.ones(len(parts.stages) - 1, dtype=torch.float64))
        self.exit_names = (*parts.exits, "output")
        self.carry_in, self.carry_out = parts.carry_in, parts.carry_out
        self.stage_macs = [int(m) for m in stage_macs]
        self.full_macs = int(full_macs)
        self.num_classes = parts.num_classes
        self.class_names = tuple(class_names) if class_names else None
        self.criterion = criterion
        self.unsupported_ops: dict[str, int] = {}      # ops the profiler had no rule for (counted as 0 MACs)
        self.__dict__["_backbone"] = parts.traced     # shares the stages' modules; not a second registered copy

    @property
    def backbone(self) -> nn.Module:
        """The original network (same weights as the stages, no exit heads): the 'full model'."""
        return self.__dict__["_backbone"]

    @property
    def heads(self) -> list[nn.Module]:
        """The exit heads (one per early exit)."""
        return [s.exit_head for s in self.stages[:-1]]

    @property
    def exit_macs(self) -> list[int]:
        """MACs per sample of answering at exit k (stages 1..k, heads included)."""
        return np.cumsum(self.stage_macs).astype(int).tolist()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits of every exit, in order (the last is the backbone's own output)."""
        carry: tuple[torch.Tensor, ...] = (x,)
        logits = []
        for stage in self.stages:
            *rest, out = stage(*carry)
            carry = tuple(rest)
            logits.append(out)
        return logits

    def set_thresholds(self, thresholds: Sequence[float], criterion: str | None = None) -> None:
        """Set one threshold per early exit (1.0 = never exit there) and optionally the criterion."""
        if len(thresholds) != len(self.stages) - 1:
            raise ConfigError(f"{len(self.stages) - 1} early exits need {len(self.stages) - 1} thresholds, "
                              f"got {len(thresholds)}")
        if any(not 0.0 <= float(t) <= 1.0 for t in thresholds):
            raise ConfigError(f"thresholds are scores in [0, 1] (1.0 switches an exit off), got {list(thresholds)}")
        if criterion is not None:
            if criterion not in CRITERIA:
                raise ConfigError(f"unknown exit criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
            self.criterion = criterion
        self.thresholds.copy_(torch.tensor([float(t) for t in thresholds], dtype=torch.float64))

    def _stage_fn(self, stage: nn.Module) -> Any:
        def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
            outs = stage(*(torch.from_numpy(a) for a in arrays))
            return [o.numpy() for o in outs]
        return run

    @torch.no_grad()
    def predict(self, x: Any, batch_size: int | None = None) -> ExitPrediction:
        """Label, confidence and exit per sample; a sample's later stages never run (batches are compacted)."""
        xt = torch.as_tensor(x.detach() if isinstance(x, torch.Tensor) else np.asarray(x)).float()
        if xt.ndim < 2:
            raise ShapeError(f"predict needs a batch (N, ...) of inputs, got shape {tuple(xt.shape)}")
        was = self.training
        self.eval()
        try:
            fns = [self._stage_fn(s) for s in self.stages]
            bs = batch_size or len(xt)
            parts = [run_staged(fns, [xt[i:i + bs].contiguous().numpy()], self.thresholds.tolist(), self.criterion,
                                self.stage_macs, self.full_macs, self.class_names) for i in range(0, len(xt), bs)]
        finally:
            self.train(was)
        return merge(parts)


def _profile_stages(stages: Sequence[nn.Module], example: torch.Tensor) -> tuple[list[int], dict[str, int]]:
    from ...metrics.profile import profile

    macs, unsupported = [], {}
    carry: tuple[torch.Tensor, ...] = (example,)
    with torch.no_grad():
        for stage in stages:
            prof = profile(stage, carry)
            macs.append(int(prof.macs))
            for op, k in prof.unsupported.items():
                unsupported[op] = unsupported.get(op, 0) + k
            *rest, _ = stage(*carry)
            carry = tuple(rest)
    return macs, unsupported


def add_early_exits(model: nn.Module, exits: Sequence[str], *, example_inputs: Any,
                    head: str | HeadFactory = "pool-linear", leaf_modules: Sequence[str] = (),
                    class_names: Sequence[str] | None = None, criterion: str = "confidence") -> EarlyExitModel:
    """Put an exit head after each named module of (a copy of) ``model``; the backbone's output is the last exit.

    Works on any backbone torch.fx can trace, skip connections included: values that jump over an exit
    point are handed to the next stage. ``head`` is a name (pool-linear, pool2-linear, conv-pool-linear) or
    ``callable(feature_shape, num_classes) -> nn.Module``; ``leaf_modules`` are kept whole when fx cannot
    trace inside them. Thresholds start at 1.0 (no early exit) until ``calibrate_thresholds``.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"add_early_exits needs a torch nn.Module, got {type(model).__name__}")
    if isinstance(exits, str):
        exits = [exits]
    if criterion not in CRITERIA:
        raise ConfigError(f"unknown exit criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")
    example = (example_inputs if isinstance(example_inputs, torch.Tensor)
               else torch.as_tensor(np.asarray(example_inputs)))
    if example.ndim < 2:
        raise ShapeError(f"example_inputs must be a batch (N, ...) of inputs, got shape {tuple(example.shape)}")
    net = copy.deepcopy(model).eval()
    parts = split(net, list(exits), (example,), head_factory(head), leaf_modules)
    if class_names is not None and len(class_names) != parts.num_classes:
        raise ConfigError(f"{len(class_names)} class_names given for a model with {parts.num_classes} outputs")
    ee = EarlyExitModel(parts, [0] * len(parts.stages), 0, class_names, criterion).eval()
    with torch.no_grad():
        ref = net(example)
        got = ee(example)[-1]
    if not torch.allclose(ref, got, atol=1e-5, rtol=1e-5):
        raise ModelRunError(f"the staged {type(model).__name__} differs from the original by "
                            f"{(ref - got).abs().max().item():.3g}; its forward may depend on Python state fx "
                            "does not capture: pass the offending submodule in leaf_modules")
    from ...metrics.profile import profile

    ee.stage_macs, unsupported = _profile_stages(ee.stages, example[:1])
    ee.full_macs = int(profile(net, example[:1]).macs)
    ee.unsupported_ops = unsupported
    return ee

