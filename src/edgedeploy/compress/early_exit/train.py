"""Train exits: jointly with the backbone (weighted sum of exit losses) or heads only on a frozen backbone,
optionally distilling every early exit from the last one (self-distillation)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from ...errors import ConfigError
from ..distill import kd_loss
from .data import as_xy, train_batches
from .model import EarlyExitModel

MODES = ("joint", "heads")


@dataclass(frozen=True)
class ExitTrainConfig:
    """``mode``: "joint" trains backbone and heads on sum_k w_k * loss_k; "heads" freezes the backbone (its
    accuracy cannot change) and trains the heads only. ``distill`` adds, for every early exit,
    alpha * T^2 * KL(last exit / T || exit / T) to (1 - alpha) * its label loss."""

    mode: str = "joint"
    weights: tuple[float, ...] | None = None   # one per exit (last included); None = all 1
    distill: bool = False
    temperature: float = 3.0
    alpha: float = 0.5
    epochs: int = 5
    lr: float = 3e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    cosine: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown exit training mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.weights is not None:
            if any(w < 0 for w in self.weights) or not any(w > 0 for w in self.weights):
                raise ConfigError(f"exit loss weights must be >= 0 with one > 0, got {self.weights}")
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if not self.temperature > 0 or not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"temperature must be > 0 and alpha in [0, 1] (got {self.temperature}, {self.alpha})")
        if not isinstance(self.epochs, int) or self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ConfigError(f"epochs and batch_size must be integers >= 1 and lr > 0 (got {self.epochs}, "
                              f"{self.batch_size}, {self.lr})")


@dataclass
class ExitTrainResult:
    """The trained early-exit model and one history row per epoch (loss; per-exit accuracy with eval_data)."""

    model: EarlyExitModel
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready history."""
        return {"history": self.history, "exit_names": list(self.model.exit_names)}

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title="exit training")
        t.add_column("epoch", justify="right")
        t.add_column("loss", justify="right")
        for name in self.model.exit_names:
            t.add_column(f"{name} acc", justify="right")
        for row in self.history:
            accs = [f"{a:.2f}" for a in row.get("exit_accuracy", [])] or ["-"] * len(self.model.exit_names)
            t.add_row(str(row["epoch"]), f"{row['loss']:.4f}", *accs)
        return t


@torch.no_grad()
def exit_accuracies(model: EarlyExitModel, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> list[float]:
    """Top-1 accuracy (percent) of every exit on its own."""
    model.eval()
    correct = torch.zeros(len(model.stages))
    for i in range(0, len(x), batch_size):
        for k, logits in enumerate(model(x[i:i + batch_size])):
            correct[k] += (logits.argmax(1) == y[i:i + batch_size]).sum()
    return (100.0 * correct / len(x)).tolist()


def _loss(logits: list[torch.Tensor], y: torch.Tensor, weights: list[float], cfg: ExitTrainConfig) -> torch.Tensor:
    last = logits[-1].detach()
    total = torch.zeros(())
    for k, (out, w) in enumerate(zip(logits, weights)):
        if w == 0:
            continue
        ce = F.cross_entropy(out, y)
        if cfg.distill and k < len(logits) - 1:
            ce = (1 - cfg.alpha) * ce + cfg.alpha * kd_loss(out, last, cfg.temperature)
        total = total + w * ce
    return total


def train_exits(model: EarlyExitModel, train_data: Any, config: ExitTrainConfig | None = None, *,
                eval_data: Any = None, progress: bool = True) -> ExitTrainResult:
    """Train ``model``'s exits in place (joint or heads-only); returns it with per-epoch history."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    cfg = config or ExitTrainConfig()
    if not isinstance(model, EarlyExitModel):
        raise ConfigError("train_exits needs the EarlyExitModel returned by add_early_exits")
    n = len(model.stages)
    weights = list(cfg.weights) if cfg.weights is not None else [1.0] * n
    if len(weights) != n:
        raise ConfigError(f"{len(weights)} exit loss weights given for {n} exits ({', '.join(model.exit_names)})")
    if cfg.mode == "heads":
        weights[-1] = 0.0                       # the backbone's own output has no trainable head
    heads = {id(p) for h in model.heads for p in h.parameters()}
    params = [p for p in model.parameters() if cfg.mode == "joint" or id(p) in heads]
    frozen = [p for p in model.parameters() if id(p) not in {id(q) for q in params}]
    flags = [p.requires_grad for p in frozen]
    ev = as_xy(eval_data, "evaluation") if eval_data is not None else None
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs) if cfg.cosine else None
    history: list[dict[str, Any]] = []
    try:
        for p in frozen:
            p.requires_grad_(False)
        with Progress(TextColumn(f"[bold]exits ({cfg.mode})[/] epoch {{task.fields[epoch]}}"), BarColumn(),
                      TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), disable=not progress,
                      transient=True) as bar:
            task = bar.add_task("", total=cfg.epochs, epoch=0, loss=0.0)
            for epoch in range(cfg.epochs):
                model.train()
                if cfg.mode == "heads":                  # frozen backbone: keep its BatchNorm statistics too
                    model.eval()
                    for h in model.heads:
                        h.train()
                total, seen = 0.0, 0
                for xb, yb in train_batches(train_data, cfg.batch_size, cfg.seed + epoch):
                    loss = _loss(model(xb.float()), yb.long(), weights, cfg)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total, seen = total + float(loss.detach()) * len(xb), seen + len(xb)
                if seen == 0:
                    raise ConfigError("train_data yielded no batches")
                if sched is not None:
                    sched.step()
                row: dict[str, Any] = {"epoch": epoch + 1, "loss": total / seen}
                if ev is not None:
                    row["exit_accuracy"] = exit_accuracies(model, *ev)
                history.append(row)
                bar.update(task, advance=1, epoch=epoch + 1, loss=row["loss"])
    finally:
        for p, f in zip(frozen, flags):
            p.requires_grad_(f)
        model.eval()
    return ExitTrainResult(model, history)
