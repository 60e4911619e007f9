"""The whole early-exit flow in one call (what a recipe's ``early_exit`` step runs): add exits, train them, choose
thresholds on a held-out split, report on the test split, export the stages and time them against the full model."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...errors import ConfigError
from .calibrate import ExitCalibration, ThresholdConfig, calibrate_thresholds
from .data import as_xy
from .export import StagedExport, StagedExportConfig, export_staged
from .model import EarlyExitModel, add_early_exits
from .train import ExitTrainConfig, ExitTrainResult, train_exits


@dataclass(frozen=True)
class EarlyExitConfig:
    """Where the exits go (module names), their head, training, threshold objective, export; ``held_out`` is the
    share of the training split kept aside to choose thresholds when the data has no ``held_out`` split."""

    exits: tuple[str, ...]
    head: str = "pool-linear"
    leaf_modules: tuple[str, ...] = ()
    class_names: tuple[str, ...] | None = None
    train: ExitTrainConfig = field(default_factory=ExitTrainConfig)
    thresholds: ThresholdConfig = field(default_factory=ThresholdConfig)
    export: StagedExportConfig | None = field(default_factory=StagedExportConfig)
    held_out: float = 0.25
    timed_samples: int = 200

    def __post_init__(self) -> None:
        if isinstance(self.exits, str):
            object.__setattr__(self, "exits", (self.exits,))
        if not self.exits:
            raise ConfigError("EarlyExitConfig.exits is empty; name the modules to put an exit after (e.g. "
                              "['layer1', 'layer2'])")
        if not 0.05 <= self.held_out <= 0.5:
            raise ConfigError(f"held_out is the share of the training split used to choose thresholds: 0.05-0.5 "
                              f"(got {self.held_out})")
        if self.timed_samples < 0:
            raise ConfigError(f"timed_samples must be >= 0 (got {self.timed_samples})")


@dataclass
class EarlyExitResult:
    """The calibrated early-exit model, its training history, thresholds report, export and measured latency."""

    model: EarlyExitModel
    training: ExitTrainResult
    calibration: ExitCalibration
    export: StagedExport | None = None
    latency: dict[str, Any] = field(default_factory=dict)   # runtime -> full vs staged ms per sample

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: training history, calibration (curves, histograms), export parity, latency."""
        return {"training": self.training.to_dict(), "calibration": self.calibration.to_dict(),
                "export": self.export.to_dict() if self.export else None, "latency": self.latency}

    def __rich__(self) -> Any:
        from rich.console import Group

        parts: list[Any] = [self.calibration]
        if self.export is not None:
            parts.append(self.export)
        for rt, row in self.latency.items():
            parts.append(f"{rt}: full {row['full_ms']:.3f} ms -> staged {row['staged_ms']:.3f} ms per sample "
                         f"(x{row['speedup']:.2f}, batch 1, {row['samples']} test samples)")
        return Group(*parts)


def _splits(data: Any, share: float) -> tuple[Any, Any, Any]:
    """(train, held-out, test): the data's own held-out split if it has one, else the tail of a seeded shuffle of
    the training split (never the test split, which only reports)."""
    if not (hasattr(data, "train") and hasattr(data, "test")):
        raise ConfigError("early exits need data with train and test splits (e.g. the zoo's digits, or an object "
                          "with .train and .test (x, y) pairs): thresholds must be judged on samples not trained on")
    x, y = as_xy(data, "train")
    test = as_xy(data, "evaluation")
    if getattr(data, "held_out", None) is not None:
        return (x, y), as_xy(data.held_out, "calibration"), test
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    cut = len(x) - max(1, int(round(share * len(x))))
    return (x[idx[:cut]], y[idx[:cut]]), (x[idx[cut:]], y[idx[cut:]]), test


def early_exits(model: torch.nn.Module, config: EarlyExitConfig, train_data: Any, *, out: str | Path | None = None,
                progress: bool = True) -> EarlyExitResult:
    """Add, train and calibrate early exits on ``model`` (a copy), export the stages into ``out`` and time them.

    ``train_data`` is labelled data with a test split (e.g. the zoo's digits): the exits train on the training
    split minus a held-out share, thresholds are chosen on the held-out share, accuracy is reported on the test split.
    """
    train, held, test = _splits(train_data, config.held_out)
    ee = add_early_exits(model, config.exits, example_inputs=train[0][:8], head=config.head,
                         leaf_modules=config.leaf_modules, class_names=config.class_names,
                         criterion=config.thresholds.criterion)
    training = train_exits(ee, train, config.train, eval_data=test, progress=progress)
    calibration = calibrate_thresholds(ee, held, test, config.thresholds)
    result = EarlyExitResult(ee, training, calibration)
    if config.export is not None and out is not None:
        result.export = export_staged(ee, test[0][:16], out=out, config=config.export)
        if config.timed_samples:
            result.latency = _time(ee, result.export, test[0][:config.timed_samples], Path(out))
    return result


def _time(model: EarlyExitModel, staged: StagedExport, x: torch.Tensor, out: Path) -> dict[str, Any]:
    """Per-sample latency at batch 1 on each exported runtime: the plain backbone vs the staged driver."""
    import numpy as np

    from ...export.onnx import export_onnx
    from ...metrics.latency import measure
    from ...runtime import load

    full = export_onnx(model.backbone, (x[:1],), out=out, name="full")
    arr = x.numpy().astype(np.float32)
    rows: dict[str, Any] = {}
    for rt in staged.parity:
        session, runner = load(full.path, runtime=rt, threads=1), staged.runner(rt, threads=1)

        def per_sample(fn: Any) -> float:
            """Median over 3 passes of one sample at a time through every timed sample (exits differ per sample)."""
            stats = measure(lambda: [fn(arr[i:i + 1]) for i in range(len(arr))], warmup=1, repeats=3, threads=1)
            return stats.median_ms / len(arr)

        full_ms, staged_ms = per_sample(session.run), per_sample(runner.predict)
        rows[rt] = {"full_ms": full_ms, "staged_ms": staged_ms, "speedup": full_ms / staged_ms,
                    "samples": len(arr)}
    return rows
