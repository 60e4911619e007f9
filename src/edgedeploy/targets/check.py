"""Budget checks: does a model (or its Profile) fit a Target? Verdicts with the numbers behind them."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..metrics.types import Profile
from .report import CheckReport, Verdict
from .target import Target
from .units import PRECISION_BITS

# precisions the profiler has no byte table for, profiled at a precision of the same width
_PROFILE_AS = {"int16": "fp16", "int4": "int8"}


def check(model_or_profile: Any, target: Target | str | os.PathLike[str],
          input_shape: tuple[int, ...] | list[Any] | None = None, precision: str | None = None,
          fps: float | None = None, example_inputs: Any = None) -> CheckReport:
    """Check a model, ONNX file or Profile against a target: precision, value range, ops (the target's compiler
    when it declares one), memory, latency (the target's calibrated estimate with its error band, else the
    roofline), FPS and bandwidth. Re-parameterizable models are judged
    in their deploy form (said in ``notes``). ``example_inputs`` (real inputs, at the model's real scale)
    make the fp16 range check exact; without them it tries random N(0, 1) values and real photos."""
    from . import verdicts as v

    tgt = target if isinstance(target, Target) else Target.load(target)
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps)
                            or fps <= 0):
        raise ConfigError(f"fps must be > 0, got {fps}")
    notes: list[str] = []
    model = _deploy_form(model_or_profile, notes)
    prof, precision = _profile_for(model, tgt, input_shape, precision, fps)
    fps = prof.fps if fps is None else fps
    peak_prec = precision if precision in tgt.peak_ops_per_s else tgt.precisions[0]
    estimate = _latency(model, input_shape, prof, tgt, peak_prec)
    verdicts = [v.precision_verdict(tgt, precision, peak_prec)]
    if precision == "fp16":
        verdicts.append(v.fp16_range_verdict(_ranges(model, input_shape, example_inputs)))
    verdicts += [_ops(model, prof, tgt, input_shape), v.memory_verdict(prof, tgt, precision),
                 v.latency_verdict(prof, tgt, estimate), v.fps_verdict(tgt, estimate, fps),
                 v.bandwidth_verdict(prof, tgt, fps)]
    return CheckReport(model=prof.model, target=tgt.name, precision=precision, fps=fps,
                       verdicts=verdicts, layers=estimate.layers, notes=notes + list(estimate.notes),
                       estimate=estimate)


def _latency(model: Any, input_shape: Any, prof: Profile, tgt: Target, precision: str) -> Any:
    """The target's calibrated latency estimate (plain roofline without a calibration); the model's output
    shapes are computed only when the calibration charges their transfer."""
    from .calibration_store import target_calibration
    from .latency import _onnx_outputs, _torch_outputs, dilated_layers, estimate_from_profile

    cal = target_calibration(tgt)
    outputs, dilated = None, frozenset()
    if cal is not None and not isinstance(model, Profile):
        dilated = dilated_layers(model)
        if cal.link_mb_s and cal.coefficients.get("transfer", 0.0) > 0:
            if isinstance(model, (str, Path)):
                outputs = _onnx_outputs(Path(model))
            elif input_shape is not None:
                outputs = _torch_outputs(model, input_shape)
    return estimate_from_profile(prof, tgt, precision, cal, outputs, dilated=dilated)


def _deploy_form(obj: Any, notes: list[str]) -> Any:
    """Re-parameterizable torch models are judged as they deploy (their train-time branches fused)."""
    if isinstance(obj, (Profile, str, Path)) or not hasattr(obj, "named_modules"):
        return obj
    from ..blocks.reparam import deploy_form

    deployed, fused = deploy_form(obj)
    if fused:
        notes.append(f"judged in its deploy form: {fused} re-parameterizable block(s) fused (what "
                     "edgedeploy.reparameterize ships); the training form would be slower")
    return deployed


def _ops(model: Any, prof: Profile, tgt: Target, input_shape: Any) -> Verdict:
    """The compiler's verdict when the target declares one and the model is at hand, else a by-name verdict."""
    from . import verdicts as v
    from .compilers import compiler_check

    name = tgt.extras.get("op_check")
    if name is None or isinstance(model, Profile):
        if name is not None:
            compiler_check(name)               # an unknown name is still an error in the target file
        return v.ops_by_name_verdict(prof, tgt)
    shape = input_shape if input_shape is not None else [t for t in prof.input_shapes][0]
    return compiler_check(name)(model, shape, tgt)


def _ranges(model: Any, input_shape: Any, example_inputs: Any) -> list[Any] | None:
    """Activation ranges on the example (or random) inputs and varied ones (real photos); None without a model."""
    if isinstance(model, (Profile, str, Path)) or (input_shape is None and example_inputs is None):
        return None
    import torch

    from ..frames import varied_inputs
    from ..metrics.ranges import activation_ranges

    if example_inputs is not None:
        from ..data import as_tensors

        example = as_tensors(example_inputs)
    else:
        shapes = [input_shape] if all(isinstance(d, int) for d in input_shape) else list(input_shape)
        example = tuple(torch.randn(tuple(s), generator=torch.Generator().manual_seed(0)) for s in shapes)
    return activation_ranges(model, [example] + [xs for _, xs in varied_inputs(example)])


def _profile_for(obj: Any, tgt: Target, input_shape: Any, precision: str | None,
                 fps: float | None) -> tuple[Profile, str]:
    if precision is not None and precision not in PRECISION_BITS:
        raise ConfigError(f"unknown precision {precision!r}; valid precisions: {', '.join(PRECISION_BITS)}")
    if isinstance(obj, Profile):
        if precision is not None and precision != obj.precision:
            raise ConfigError(f"the profile of {obj.model} was made at {obj.precision}, not {precision}; "
                              f"profile again with precision={precision!r} or omit precision")
        return obj, obj.precision
    precision = precision or tgt.precisions[0]
    if input_shape is None and not isinstance(obj, str | Path):
        raise ConfigError("check() needs input_shape (e.g. (1, 3, 224, 224)) to profile a model; "
                          "or pass a Profile from edgedeploy.profile()")
    from ..metrics.profile import profile

    prof = profile(obj, input_shape, precision=_PROFILE_AS.get(precision, precision), fps=fps)
    return prof, precision
