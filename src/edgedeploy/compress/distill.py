"""Knowledge distillation: a student learns the teacher's softened logits (and optionally its features).

loss = alpha * T^2 * KL(teacher/T || student/T) + (1 - alpha) * CE(student, labels)
       + feature_weight * sum MSE(adapter(student feature), teacher feature)
Adapters are 1x1 convolutions (or linear maps) trained with the student and discarded afterwards.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, ShapeError


@dataclass(frozen=True)
class DistillConfig:
    """Distillation knobs; the defaults recover a pruned digits CNN from its unpruned self in seconds."""

    temperature: float = 4.0          # softens both distributions; gradients scale by T^2 to compensate
    alpha: float = 0.5                # weight of the soft-target loss; 1 - alpha goes to the hard labels
    feature_pairs: tuple[tuple[str, str], ...] | None = None   # (student module, teacher module) names
    feature_weight: float = 1.0       # weight of the feature (hint) loss
    epochs: int = 5
    lr: float = 3e-3
    weight_decay: float = 0.0
    cosine: bool = True               # cosine-anneal the learning rate to 0 over all epochs (stable final accuracy)
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0 (got {self.temperature}); 2-6 is typical")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1] (got {self.alpha}): 1 = soft targets only, 0 = labels only")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"epochs must be an integer >= 1 (got {self.epochs!r})")
        if not self.lr > 0 or self.batch_size < 1 or self.feature_weight < 0:
            raise ConfigError("lr must be > 0, batch_size >= 1 and feature_weight >= 0 "
                              f"(got lr={self.lr}, batch_size={self.batch_size}, feature_weight={self.feature_weight})")
        if self.feature_pairs is not None:
            pairs = tuple(tuple(p) for p in self.feature_pairs)
            if any(len(p) != 2 for p in pairs):
                raise ConfigError("feature_pairs must be (student_layer, teacher_layer) name pairs")
            object.__setattr__(self, "feature_pairs", pairs)


@dataclass
class DistillResult:
    """The trained student and one history row per epoch (losses, and accuracy if eval data was given)."""

    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)


def _batches(data: Any, cfg: DistillConfig, epoch: int) -> Iterable[Any]:
    if hasattr(data, "batches"):
        return data.batches(cfg.batch_size, train=True, seed=cfg.seed + epoch)
    if callable(data):
        return data(epoch)
    return data


def _split(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and len(batch) in (1, 2):
        return batch[0], (batch[1] if len(batch) == 2 else None)
    raise ConfigError("distill data must yield tensors or (inputs, labels) pairs")


class _Features:
    """Forward hooks capturing named module outputs."""

    def __init__(self, model: nn.Module, names: list[str], role: str) -> None:
        modules = dict(model.named_modules())
        for n in names:
            if n not in modules:
                import difflib

                close = difflib.get_close_matches(n, [k for k in modules if k], n=3)
                raise ConfigError(f"{role} layer {n!r} in feature_pairs does not exist"
                                  + (f"; did you mean: {', '.join(close)}" if close else ""))
        self.values: dict[str, torch.Tensor] = {}
        self.hooks = [modules[n].register_forward_hook(
            lambda _m, _i, out, n=n: self.values.__setitem__(n, out)) for n in names]

    def close(self) -> None:
        for h in self.hooks:
            h.remove()


def _adapter(s: torch.Tensor, t: torch.Tensor) -> nn.Module:
    """A 1x1 conv (4-D features) or linear map (2-D) from the student's width to the teacher's."""
    if s.dim() == 4 and t.dim() == 4:
        return nn.Conv2d(s.shape[1], t.shape[1], 1, bias=False)
    if s.dim() == 2 and t.dim() == 2:
        return nn.Linear(s.shape[1], t.shape[1], bias=False)
    raise ShapeError(f"feature pair shapes {tuple(s.shape)} (student) and {tuple(t.shape)} (teacher) cannot be "
                     "matched; pair two conv feature maps (N,C,H,W) or two (N,C) vectors")


def _feature_loss(adapters: nn.ModuleList, pairs: tuple[tuple[str, str], ...], sf: Mapping[str, torch.Tensor],
                  tf: Mapping[str, torch.Tensor]) -> torch.Tensor:
    total = torch.zeros(())
    for adapter, (sn, tn) in zip(adapters, pairs):
        s = adapter(sf[sn])
        t = tf[tn].detach()
        if s.dim() == 4 and s.shape[-2:] != t.shape[-2:]:
            s = F.adaptive_avg_pool2d(s, t.shape[-2:])
        total = total + F.mse_loss(s, t)
    return total


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Soft-target loss: T^2 * KL(softmax(teacher / T) || softmax(student / T)), batch-mean."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits.detach() / t, 1),
                    reduction="batchmean", log_target=True) * t * t


def distill(student: nn.Module, teacher: nn.Module, data: Any, config: DistillConfig | None = None, *,
            eval_fn: Callable[[nn.Module], float] | None = None, progress: bool = True,
            inplace: bool = False) -> DistillResult:
    """Train (a copy of) ``student`` to match ``teacher`` on ``data``; returns the student and per-epoch history.

    ``data``: an object with ``.batches(batch_size, train, seed)`` (e.g. DigitsData), a re-iterable of
    (x, y) or x batches, or ``callable(epoch) -> batches``. Without labels use ``alpha=1``.
    ``eval_fn(model) -> metric`` is recorded in the history after every epoch.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    cfg = config or DistillConfig()
    if not isinstance(student, nn.Module) or not isinstance(teacher, nn.Module):
        raise ConfigError("distill() needs torch.nn.Module student and teacher")
    torch.manual_seed(cfg.seed)
    model = student if inplace else copy.deepcopy(student)
    teacher.eval()
    pairs = cfg.feature_pairs or ()
    s_hooks = _Features(model, [p[0] for p in pairs], "student")
    t_hooks = _Features(teacher, [p[1] for p in pairs], "teacher")
    adapters: nn.ModuleList | None = None
    opt = sched = None
    history: list[dict[str, float]] = []
    try:
        with Progress(TextColumn("[bold]distill[/] epoch {task.fields[epoch]}"), BarColumn(),
                      TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(),
                      disable=not progress, transient=True) as bar:
            task = bar.add_task("", total=cfg.epochs, epoch=0, loss=0.0)
            for epoch in range(cfg.epochs):
                model.train()
                sums = {"loss": 0.0, "kd": 0.0, "ce": 0.0, "feat": 0.0}
                n = 0
                for batch in _batches(data, cfg, epoch):
                    x, y = _split(batch)
                    if y is None and cfg.alpha < 1.0:
                        raise ConfigError(f"data has no labels but alpha={cfg.alpha} weights the label loss; "
                                          "use alpha=1.0 for label-free distillation")
                    with torch.no_grad():
                        t_out = teacher(x)
                    s_out = model(x)
                    if s_out.shape != t_out.shape:
                        raise ShapeError(f"student output {tuple(s_out.shape)} and teacher output "
                                         f"{tuple(t_out.shape)} differ; distillation needs the same logits shape")
                    if adapters is None:
                        adapters = nn.ModuleList(_adapter(s_hooks.values[s], t_hooks.values[t]) for s, t in pairs)
                        opt = torch.optim.Adam(list(model.parameters()) + list(adapters.parameters()),
                                               lr=cfg.lr, weight_decay=cfg.weight_decay)
                        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs) if cfg.cosine else None
                    kd = kd_loss(s_out, t_out, cfg.temperature)
                    ce = F.cross_entropy(s_out, y) if y is not None and cfg.alpha < 1.0 else torch.zeros(())
                    feat = _feature_loss(adapters, pairs, s_hooks.values, t_hooks.values) if pairs else torch.zeros(())
                    loss = cfg.alpha * kd + (1.0 - cfg.alpha) * ce + cfg.feature_weight * feat
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    k = len(x)
                    for key, v in (("loss", loss), ("kd", kd), ("ce", ce), ("feat", feat)):
                        sums[key] += float(v.detach()) * k
                    n += k
                if n == 0:
                    raise ConfigError("distill data yielded no batches")
                if sched is not None:
                    sched.step()
                model.eval()
                row = {"epoch": float(epoch + 1), **{k: v / n for k, v in sums.items()}}
                if eval_fn is not None:
                    row["eval"] = float(eval_fn(model))
                history.append(row)
                bar.update(task, advance=1, epoch=epoch + 1, loss=row["loss"])
    finally:
        s_hooks.close()
        t_hooks.close()
    return DistillResult(model.eval(), history)
