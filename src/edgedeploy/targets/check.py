"""Budget checks: does a model (or its Profile) fit a Target? Verdicts with the numbers behind them."""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..metrics.types import Profile
from .target import PRECISION_BITS, Target

# precisions the profiler has no byte table for, profiled at a precision of the same width
_PROFILE_AS = {"int16": "fp16", "int4": "int8"}


@dataclass(frozen=True)
class Verdict:
    """One check: passed (None = informative, or unknown when ``unknown``), the measured value and the limit."""

    name: str
    passed: bool | None
    measured: float | str | None
    limit: float | str | None
    unit: str
    message: str
    unknown: bool = False          # the tool that decides (a compiler) could not be asked: not a PASS

    @property
    def status(self) -> str:
        """PASS, FAIL, UNKNOWN or info."""
        return {True: "PASS", False: "FAIL"}.get(self.passed, "UNKNOWN" if self.unknown else "info")


@dataclass(frozen=True)
class LayerLatency:
    """Roofline estimate for one layer: max(compute time, memory time)."""

    name: str
    op: str
    compute_ms: float
    memory_ms: float

    @property
    def latency_ms(self) -> float:
        """The layer's estimated time: whichever of compute and memory takes longer."""
        return max(self.compute_ms, self.memory_ms)

    @property
    def bound(self) -> str:
        """'compute' or 'memory': what limits this layer."""
        return "compute" if self.compute_ms >= self.memory_ms else "memory"


@dataclass
class CheckReport:
    """Verdicts of one model against one target, with the per-layer latency estimate."""

    model: str
    target: str
    precision: str
    fps: float | None
    verdicts: list[Verdict]
    layers: list[LayerLatency] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no verdict failed (informative and unknown verdicts do not count as failures)."""
        return all(v.passed is not False for v in self.verdicts)

    @property
    def status(self) -> str:
        """FAIL if any verdict failed, UNKNOWN if one could not be decided, else PASS."""
        if not self.passed:
            return "FAIL"
        return "UNKNOWN" if any(v.unknown for v in self.verdicts) else "PASS"

    @property
    def failures(self) -> list[Verdict]:
        """The verdicts that failed."""
        return [v for v in self.verdicts if v.passed is False]

    @property
    def latency_ms(self) -> float:
        """Estimated latency per frame: the sum of the layers' roofline times."""
        return sum(layer.latency_ms for layer in self.layers)

    def __getitem__(self, name: str) -> Verdict:
        for v in self.verdicts:
            if v.name == name:
                return v
        raise KeyError(f"no verdict {name!r}; verdicts: {', '.join(v.name for v in self.verdicts)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: verdicts, per-layer estimates and the overall result."""
        return {
            "model": self.model, "target": self.target, "precision": self.precision, "fps": self.fps,
            "passed": self.passed, "status": self.status, "latency_ms": self.latency_ms, "notes": self.notes,
            "verdicts": [{**asdict(v), "status": v.status} for v in self.verdicts],
            "layers": [{**asdict(r), "latency_ms": r.latency_ms, "bound": r.bound} for r in self.layers],
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """Serialize to JSON; also write it atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            from .._io import write_bytes_atomic

            write_bytes_atomic(path, text.encode())
        return text

    def __rich__(self) -> Any:
        from .render import report_renderable

        return report_renderable(self)

    def __str__(self) -> str:
        from .render import to_text

        return to_text(self)


def check(model_or_profile: Any, target: Target | str | os.PathLike[str],
          input_shape: tuple[int, ...] | list[Any] | None = None, precision: str | None = None,
          fps: float | None = None, example_inputs: Any = None) -> CheckReport:
    """Check a model, ONNX file or Profile against a target: precision, value range, ops (the target's compiler
    when it declares one), memory, roofline latency, FPS and bandwidth. Re-parameterizable models are judged
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
    layers = roofline(prof, tgt, peak_prec)
    latency = sum(r.latency_ms for r in layers)
    verdicts = [v.precision_verdict(tgt, precision, peak_prec)]
    if precision == "fp16":
        verdicts.append(v.fp16_range_verdict(_ranges(model, input_shape, example_inputs)))
    verdicts += [_ops(model, prof, tgt, input_shape), v.memory_verdict(prof, tgt, precision),
                 v.latency_verdict(prof, tgt, layers), v.fps_verdict(tgt, latency, fps),
                 v.bandwidth_verdict(prof, tgt, fps)]
    return CheckReport(model=prof.model, target=tgt.name, precision=precision, fps=fps,
                       verdicts=verdicts, layers=layers, notes=notes)


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


def roofline(prof: Profile, target: Target, precision: str) -> list[LayerLatency]:
    """Per-layer roofline: compute = (2*MACs + element-wise ops) / peak; memory = traffic / usable bandwidth."""
    peak = target.peak_ops_per_s[precision]
    bandwidth = target.usable_bandwidth_gbps * 1e9
    return [LayerLatency(name=r.name, op=r.op, compute_ms=1e3 * (2 * r.macs + r.elem_ops) / peak,
                         memory_ms=1e3 * r.traffic_bytes / bandwidth) for r in prof.layers]


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
