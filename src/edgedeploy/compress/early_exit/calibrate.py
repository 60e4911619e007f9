"""``calibrate_thresholds``: per-exit thresholds chosen on a held-out split, reported on a separate test split.

Objectives: the fewest MACs with an accuracy drop (vs the full model, the last exit) of at most
``max_accuracy_drop`` points, or the best accuracy within ``target_macs`` (a fraction of the full model's
MACs per sample). Search: the best shared threshold, then coordinate descent exit by exit over quantiles
of the held-out scores. The gap between the drop asked and the drop achieved on the test split is reported.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ...errors import ConfigError
from .data import as_xy
from .decide import CRITERIA, exit_scores, first_exit
from .model import EarlyExitModel

OPERATING_DROPS = (0.0, 0.25, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class ThresholdConfig:
    """Give ``max_accuracy_drop`` (points) or ``target_macs`` (fraction of the full model's MACs per sample);
    neither means max_accuracy_drop=0.5. ``grid``: candidate thresholds per exit (quantiles of held-out scores).
    ``margin``: standard errors of the held-out drop estimate kept in reserve (drop + margin x SE <= asked), so the
    drop on new data stays within the asked one more often (1.0 ~ 84% one-sided); 0 trusts the held-out split."""

    max_accuracy_drop: float | None = None
    target_macs: float | None = None
    criterion: str = "confidence"
    grid: int = 100
    margin: float = 0.0

    def __post_init__(self) -> None:
        if self.max_accuracy_drop is not None and self.target_macs is not None:
            raise ConfigError("give max_accuracy_drop or target_macs, not both")
        if self.max_accuracy_drop is None and self.target_macs is None:
            object.__setattr__(self, "max_accuracy_drop", 0.5)
        if self.max_accuracy_drop is not None and not 0.0 <= self.max_accuracy_drop <= 100.0:
            raise ConfigError(f"max_accuracy_drop is in accuracy points (0-100), got {self.max_accuracy_drop}")
        if self.target_macs is not None and not 0.0 < self.target_macs <= 2.0:
            raise ConfigError(f"target_macs is a fraction of the full model's MACs per sample (e.g. 0.5), got "
                              f"{self.target_macs}; for an absolute budget divide it by model.full_macs")
        if self.criterion not in CRITERIA:
            raise ConfigError(f"unknown exit criterion {self.criterion!r}; choose one of {', '.join(CRITERIA)}")
        if self.grid < 2:
            raise ConfigError(f"grid must be >= 2 candidate thresholds per exit, got {self.grid}")
        if not 0.0 <= self.margin <= 5.0:
            raise ConfigError(f"margin is a number of standard errors in [0, 5], got {self.margin}")


@dataclass(frozen=True)
class SplitStats:
    """Staged accuracy vs the full model on one split, MACs per sample and the exit histogram."""

    samples: int
    accuracy: float
    full_accuracy: float
    drop: float                   # full_accuracy - accuracy, points
    macs_per_sample: float
    macs_fraction: float          # of the full model's MACs
    exit_histogram: list[int]
    exit_accuracy: list[float]    # every exit on its own

    @property
    def saving(self) -> float:
        """Fraction of the full model's MACs skipped on average."""
        return 1.0 - self.macs_fraction


@dataclass
class ExitCalibration:
    """Thresholds set on ``model``; what was asked, what the held-out and test splits achieved, curves."""

    model: EarlyExitModel
    thresholds: list[float]
    criterion: str
    objective: str                # "max_accuracy_drop" or "target_macs"
    asked: float
    margin: float
    held_out: SplitStats
    test: SplitStats | None
    curve: list[dict[str, float]] = field(default_factory=list)             # shared-threshold sweep, test split
    operating_points: list[dict[str, float]] = field(default_factory=list)  # per-exit search at several drops

    @property
    def gap(self) -> float | None:
        """Achieved minus asked on the test split: accuracy points (drop objective) or MACs fraction."""
        if self.test is None:
            return None
        got = self.test.drop if self.objective == "max_accuracy_drop" else self.test.macs_fraction
        return got - self.asked

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: thresholds, asked vs achieved, both splits, exit histograms and accuracy-vs-MACs curves."""
        return {"thresholds": self.thresholds, "criterion": self.criterion, "objective": self.objective,
                "margin": self.margin,
                "asked": self.asked, "gap": self.gap, "exit_names": list(self.model.exit_names),
                "exit_macs": self.model.exit_macs, "full_macs": self.model.full_macs,
                "held_out": {**asdict(self.held_out), "saving": self.held_out.saving},
                "test": {**asdict(self.test), "saving": self.test.saving} if self.test else None,
                "curve": self.curve, "operating_points": self.operating_points}

    def __rich__(self) -> Any:
        from rich.table import Table

        unit = "pt drop" if self.objective == "max_accuracy_drop" else "x full MACs"
        t = Table(title=f"early-exit thresholds ({self.criterion}): asked {self.asked:g} {unit}"
                        + (f", test gap {self.gap:+.2f}" if self.gap is not None else ", no test split"))
        for c in ("split", "samples", "full acc", "staged acc", "drop pt", "MACs/sample", "saved", "exit histogram"):
            t.add_column(c, justify="right")
        for name, s in (("held-out", self.held_out), ("test", self.test)):
            if s is not None:
                t.add_row(name, str(s.samples), f"{s.full_accuracy:.2f}", f"{s.accuracy:.2f}", f"{s.drop:+.2f}",
                          f"{s.macs_per_sample:,.0f}", f"{100 * s.saving:.1f}%", str(s.exit_histogram))
        t.caption = "thresholds: " + ", ".join(f"{n}={v:.4f}" for n, v in zip(self.model.exit_names, self.thresholds))
        return t


@torch.no_grad()
def _exit_outputs(model: EarlyExitModel, x: torch.Tensor, criterion: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores), each (N, exits), from one pass computing every exit."""
    model.eval()
    labels, scores = [], []
    for i in range(0, len(x), 256):
        outs = [exit_scores(o.numpy(), criterion) for o in model(x[i:i + 256])]
        labels.append(np.stack([o[0] for o in outs], 1))
        scores.append(np.stack([o[2] for o in outs], 1))
    return np.concatenate(labels), np.concatenate(scores)


class _Split:
    """One split's per-exit correctness and scores, evaluated for any thresholds."""

    def __init__(self, model: EarlyExitModel, data: Any, role: str, criterion: str) -> None:
        x, y = as_xy(data, role)
        labels, self.scores = _exit_outputs(model, x, criterion)
        self.correct = labels == y.numpy()[:, None]
        self.exit_macs = np.asarray(model.exit_macs, dtype=np.float64)
        self.full_macs = float(model.full_macs)
        self.full_acc = 100.0 * float(self.correct[:, -1].mean())

    def evaluate(self, thresholds: list[float]) -> tuple[float, float, np.ndarray]:
        """(staged accuracy %, mean MACs per sample, 0-based exit per sample) for ``thresholds``."""
        first = first_exit(self.scores, thresholds)
        acc = 100.0 * float(self.correct[np.arange(len(first)), first].mean())
        return acc, float(self.exit_macs[first].mean()), first

    def drop_se(self, first: np.ndarray) -> float:
        """Standard error (points) of the accuracy drop: per-sample full-minus-staged correctness."""
        d = self.correct[:, -1].astype(np.float64) - self.correct[np.arange(len(first)), first]
        return 100.0 * float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0

    def stats(self, thresholds: list[float]) -> SplitStats:
        """The split's report for ``thresholds``."""
        acc, macs, first = self.evaluate(thresholds)
        k = self.scores.shape[1]
        return SplitStats(len(first), acc, self.full_acc, self.full_acc - acc, macs, macs / self.full_macs,
                          np.bincount(first, minlength=k).astype(int).tolist(),
                          (100.0 * self.correct.mean(0)).tolist())


def _search(split: _Split, drop: float | None, target: float | None, grid: int, margin: float = 0.0) -> list[float]:
    m = split.scores.shape[1] - 1
    qs = np.linspace(0.0, 1.0, grid)
    cands = [np.unique(np.append(np.quantile(split.scores[:, k], qs), 1.0)) for k in range(m)]

    def key(th: list[float]) -> tuple[float, ...]:
        acc, macs, first = split.evaluate(th)
        if drop is not None:
            over = max(0.0, split.full_acc - acc + (margin * split.drop_se(first) if margin else 0.0) - drop)
            return (over > 1e-9, over, macs, -acc)
        over = max(0.0, macs / split.full_macs - target)  # type: ignore[operator]
        return (over > 1e-9, over, -acc, macs)

    best = min(([float(t)] * m for t in np.unique(np.concatenate(cands))), key=key)
    best_key = key(best)
    for _ in range(10):                      # coordinate descent, exit by exit, until nothing improves
        improved = False
        for k in range(m):
            for t in cands[k]:
                trial = list(best)
                trial[k] = float(t)
                trial_key = key(trial)
                if trial_key < best_key:
                    best, best_key, improved = trial, trial_key, True
        if not improved:
            break
    return best


def calibrate_thresholds(model: EarlyExitModel, calibration: Any, eval_data: Any = None,
                         config: ThresholdConfig | None = None, *, max_accuracy_drop: float | None = None,
                         target_macs: float | None = None, criterion: str | None = None,
                         margin: float | None = None) -> ExitCalibration:
    """Choose per-exit thresholds on the held-out ``calibration`` split, set them on ``model``; report on ``eval_data``.

    Either give ``config`` or the ``max_accuracy_drop`` / ``target_macs`` / ``criterion`` / ``margin`` shortcuts."""
    if not isinstance(model, EarlyExitModel):
        raise ConfigError("calibrate_thresholds needs the EarlyExitModel returned by add_early_exits")
    if config is not None and (max_accuracy_drop, target_macs, criterion, margin) != (None, None, None, None):
        raise ConfigError("pass a ThresholdConfig or the max_accuracy_drop/target_macs/criterion/margin keywords, "
                          "not both")
    cfg = config or ThresholdConfig(max_accuracy_drop, target_macs, criterion or "confidence", margin=margin or 0.0)
    held = _Split(model, calibration, "calibration", cfg.criterion)
    test = _Split(model, eval_data, "evaluation", cfg.criterion) if eval_data is not None else None
    thresholds = _search(held, cfg.max_accuracy_drop, cfg.target_macs, cfg.grid, cfg.margin)
    model.set_thresholds(thresholds, cfg.criterion)
    shown = test or held
    curve = []
    for t in np.linspace(0.0, 1.0, 41):
        acc, macs, _ = shown.evaluate([float(t)] * (held.scores.shape[1] - 1))
        curve.append({"threshold": float(t), "accuracy": acc, "macs_fraction": macs / shown.full_macs})
    points = []
    for d in OPERATING_DROPS:
        th = _search(held, d, None, cfg.grid, cfg.margin)
        acc, macs, _ = shown.evaluate(th)
        points.append({"asked_drop": d, "thresholds": th, "accuracy": acc, "drop": shown.full_acc - acc,
                       "macs_fraction": macs / shown.full_macs})
    objective = "max_accuracy_drop" if cfg.max_accuracy_drop is not None else "target_macs"
    asked = float(cfg.max_accuracy_drop if cfg.max_accuracy_drop is not None
                  else cfg.target_macs)  # type: ignore[arg-type]
    return ExitCalibration(model, thresholds, cfg.criterion, objective, asked, cfg.margin, held.stats(thresholds),
                           test.stats(thresholds) if test else None, curve, points)
