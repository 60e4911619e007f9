"""``QuantConfig(keep_float=N)``: keep the N layers whose float copy most helps the output in floating point.

Each quantizable layer is tried once: everything quantized except that layer, run on the user's calibration
data, scored by the cosine between its outputs and the float model's. The layers with the highest scores are
the ones whose quantization error costs the most; keeping only those few in float recovers most of the lost
accuracy at a fraction of the speed cost of keeping a whole layer family (e.g. on MiniLM-L6, one FFN
down-projection instead of six). The test data is never used to choose.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from ...errors import CalibrationError
from ...onnx_utils import cosine_per_sample
from .graph import Layer
from .registry import Job, Quantizer

SWEEP_MODES = ("int8-static", "int8-dynamic")


@dataclasses.dataclass(frozen=True)
class FloatCandidate:
    """Output cosine (mean and min over calibration samples) when only ``layer`` stays in float."""

    layer: str
    module: str
    cosine_mean: float
    cosine_min: float


def _outputs(quantizer: Quantizer, path: Path, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    session = quantizer.session(path)
    return np.concatenate([session.run(f)[0] for f in feeds])


def rank_float_candidates(quantizer: Quantizer, job: Job, layers: list[Layer]) -> list[FloatCandidate]:
    """Score every layer not already ignored by the output cosine with only it in float; best first."""
    if not job.calibration:
        raise CalibrationError("keep_float needs calibration data to choose the layers: pass calibration= a few "
                               "representative inputs (not your test set)")
    from rich.progress import Progress

    feeds = job.calibration
    ref = _outputs(quantizer, quantizer.baseline(job.fp32_onnx, job.out), feeds)
    candidates = [ly for ly in layers if ly.name not in job.ignored_nodes]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgedeploy-keepfloat-") as tmp, Progress(transient=True) as progress:
        task = progress.add_task("per-layer sensitivity (keep_float)", total=len(candidates))
        for i, layer in enumerate(candidates):
            trial = dataclasses.replace(job, ignored_nodes=[*job.ignored_nodes, layer.name],
                                        ignored_modules=[*job.ignored_modules, layer.module], out=Path(tmp) / str(i))
            trial.out.mkdir()
            cos = cosine_per_sample(ref, _outputs(quantizer, quantizer.quantize(trial).path, feeds))
            rows.append(FloatCandidate(layer.name, layer.module, float(cos.mean()), float(cos.min())))
            progress.advance(task)
    return sorted(rows, key=lambda c: (-c.cosine_mean, -c.cosine_min))


def choose_float_layers(quantizer: Quantizer, job: Job, layers: list[Layer]) -> tuple[Job, str]:
    """The job with the ``config.keep_float`` most sensitive layers added to its ignored ones, and a report note."""
    count = job.config.keep_float
    chosen = rank_float_candidates(quantizer, job, layers)[:count]
    job = dataclasses.replace(job, ignored_nodes=[*job.ignored_nodes, *(c.layer for c in chosen)],
                              ignored_modules=[*job.ignored_modules, *(c.module for c in chosen)])
    picked = ", ".join(f"{c.module or c.layer} (cosine {c.cosine_mean:.4f} with it in float)" for c in chosen)
    n = sum(len(next(iter(f.values()))) for f in job.calibration)
    return job, f"keep_float={count}: chose by sensitivity on {n} calibration samples: {picked}"
