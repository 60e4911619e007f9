"""Per-layer sensitivity (only that layer quantized) and mixed precision within an accuracy budget."""
from __future__ import annotations

import dataclasses
from typing import Any

from ...errors import CalibrationError, ConfigError
from .api import QuantResult, quantize
from .config import QuantConfig


@dataclasses.dataclass(frozen=True)
class LayerSensitivity:
    """Accuracy drop (points) and output cosine when only ``layer`` is quantized."""

    layer: str
    module: str
    accuracy_drop: float
    output_cosine: float


def _quiet(model: Any, config: QuantConfig, **kw: Any) -> QuantResult:
    return quantize(model, config, per_layer=False, latency=False, **kw)


def sensitivity(model_or_onnx: Any, config: QuantConfig, *, calibration: Any, eval_data: Any,
                train_data: Any = None, out: Any = None, example_inputs: Any = None) -> list[LayerSensitivity]:
    """Quantize one layer at a time (all others float); most sensitive first."""
    kw = dict(calibration=calibration, eval_data=eval_data, train_data=train_data, out=out,
              example_inputs=example_inputs)
    full = _quiet(model_or_onnx, config, **kw)
    if full.report.accuracy_before is None:
        raise CalibrationError("sensitivity needs labelled eval_data=(x, y) to measure accuracy per layer")
    names = [(ly.name, ly.module) for ly in full.report.layers]
    rows = []
    for name, module in names:
        others = tuple(n for n, _ in names if n != name)
        r = _quiet(model_or_onnx, dataclasses.replace(config, ignored=others), **kw).report
        rows.append(LayerSensitivity(name, module, float(r.accuracy_drop or 0.0), float(r.output_cosine or 1.0)))
    return sorted(rows, key=lambda s: (-s.accuracy_drop, s.output_cosine))


def mixed_precision(model_or_onnx: Any, config: QuantConfig, *, calibration: Any, eval_data: Any,
                    budget: float = 1.0, train_data: Any = None, out: Any = None, show: bool = True,
                    example_inputs: Any = None) -> QuantResult:
    """Keep the most sensitive layers in float until the top-1 drop is within ``budget`` points; print the table."""
    if not budget >= 0 or budget == float("inf"):          # NaN fails the first test
        raise ConfigError(f"accuracy budget must be a finite number of points >= 0 (got {budget})")
    kw = dict(calibration=calibration, eval_data=eval_data, train_data=train_data, out=out,
              example_inputs=example_inputs)
    result = quantize(model_or_onnx, config, **kw)
    drop = result.report.accuracy_drop
    if drop is None:
        raise CalibrationError("mixed precision needs labelled eval_data=(x, y) to check the accuracy budget")
    ranking = sensitivity(model_or_onnx, config, **kw) if drop > budget else []
    kept = list(config.ignored)
    for s in ranking:
        if result.report.accuracy_drop <= budget:
            break
        kept.append(s.layer)
        result = quantize(model_or_onnx, dataclasses.replace(config, ignored=tuple(kept)), **kw)
    by_layer = {s.layer: s.accuracy_drop for s in ranking}
    for lr in result.report.layers:
        lr.sensitivity = by_layer.get(lr.name)
    result.report.notes.append(f"mixed precision: budget {budget:.2f} points, drop {result.report.accuracy_drop:.2f}; "
                               f"kept in float: {', '.join(kept) or 'none'}")
    if show:
        from rich.console import Console

        Console().print(result.report.layer_table())
    return result
