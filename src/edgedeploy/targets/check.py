"""Budget checks: does a model (or its Profile) fit a Target? Verdicts with the numbers behind them."""
from __future__ import annotations

import json
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
    """One check: passed (None = informative, no limit on this target), the measured value and the limit."""

    name: str
    passed: bool | None
    measured: float | str | None
    limit: float | str | None
    unit: str
    message: str


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

    @property
    def passed(self) -> bool:
        """True when no verdict failed (informative verdicts do not count)."""
        return all(v.passed is not False for v in self.verdicts)

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
            "passed": self.passed, "latency_ms": self.latency_ms,
            "verdicts": [asdict(v) for v in self.verdicts],
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
          fps: float | None = None) -> CheckReport:
    """Check a model or Profile against a target: precision, ops, memory, roofline latency, FPS, bandwidth."""
    tgt = target if isinstance(target, Target) else Target.load(target)
    prof, precision = _profile_for(model_or_profile, tgt, input_shape, precision, fps)
    fps = prof.fps if fps is None else fps
    if fps is not None and fps <= 0:
        raise ConfigError(f"fps must be > 0, got {fps}")
    peak_prec = precision if precision in tgt.peak_ops_per_s else tgt.precisions[0]
    layers = roofline(prof, tgt, peak_prec)
    verdicts = [
        _precision_verdict(tgt, precision, peak_prec),
        _ops_verdict(prof, tgt),
        _memory_verdict(prof, tgt, precision),
        _latency_verdict(prof, tgt, layers),
    ]
    compiler = _compiler_ops_verdict(model_or_profile, tgt, input_shape)
    if compiler is not None:
        verdicts.append(compiler)
    latency = sum(r.latency_ms for r in layers)
    verdicts.append(_fps_verdict(tgt, latency, fps))
    verdicts.append(_bandwidth_verdict(prof, tgt, fps))
    return CheckReport(model=prof.model, target=tgt.name, precision=precision, fps=fps,
                       verdicts=verdicts, layers=layers)


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


def _compiler_ops_verdict(obj: Any, tgt: Target, input_shape: Any) -> Verdict | None:
    """The target compiler's own op check (``extras.op_check`` in its YAML), run on the model itself.

    ``qnn``: the graph is quantized and opened on the QNN HTP backend with CPU fallback disabled, the same
    check ``export_qnn`` runs. Skipped (an informational verdict) for a bare Profile or without the plugin.
    """
    kind = tgt.extras.get("op_check")
    if kind is None:
        return None
    if kind != "qnn":
        raise ConfigError(f"target {tgt.name}: unknown extras.op_check {kind!r}; supported: qnn")
    if isinstance(obj, Profile):
        return Verdict("htp ops", None, None, None, "nodes", "QNN op check needs the model, not a Profile")
    from ..errors import ToolchainError
    from ..export.qnn import qnn_unsupported_ops

    example = None
    if not isinstance(obj, str | Path):
        import torch

        example = torch.zeros(tuple(input_shape))
    try:
        bad = qnn_unsupported_ops(obj, example)
    except ToolchainError as exc:
        return Verdict("htp ops", None, None, None, "nodes", f"QNN op check skipped: {exc}")
    if not bad:
        return Verdict("htp ops", True, 0, 0, "nodes", "every node runs on QNN HTP (checked on the HTP backend)")
    names = "; ".join(str(n) for n in bad)
    return Verdict("htp ops", False, len(bad), 0, "nodes", f"QNN HTP rejects {names}")


def _precision_verdict(tgt: Target, precision: str, peak_prec: str) -> Verdict:
    ok = precision in tgt.precisions
    msg = (f"{tgt.name} runs {precision}" if ok else
           f"{tgt.name} does not run {precision}; quantize/convert to one of {', '.join(tgt.precisions)} "
           f"(latency below assumes {peak_prec})")
    return Verdict("precision", ok, precision, ", ".join(tgt.precisions), "", msg)


def _ops_verdict(prof: Profile, tgt: Target) -> Verdict:
    onnx = prof.source == "onnx"
    if onnx and tgt.supported_onnx_ops is None and tgt.supported_ops is not None:
        return Verdict("ops", None, None, None, "op types",
                       f"{tgt.name} lists no ONNX op types (supported_onnx_ops): ops of this ONNX profile not "
                       "checked; add that field to the target YAML or profile the torch model")
    bad: dict[str, list[str]] = {}
    for row in prof.layers:
        if tgt.supports_op(row.op, onnx):
            continue
        inner = [o for o in row.ops if not tgt.supports_op(o, onnx)]
        if row.ops and not inner:
            continue                # e.g. a custom leaf module made only of supported ops
        for op in inner or [row.op]:
            bad.setdefault(op if op == row.op else f"{op} in {row.op}", []).append(row.name)
    if not bad:
        n = len({r.op for r in prof.layers})
        msg = (f"{tgt.name} runs every op" if tgt.supported_ops is None else
               f"all {n} op types are supported by {tgt.name}")
        return Verdict("ops", True, 0, 0, "op types", msg)
    parts = [f"{op} (used by {', '.join(names[:3])}{', ...' if len(names) > 3 else ''})" for op, names in bad.items()]
    return Verdict("ops", False, len(bad), 0, "op types",
                   f"not supported by {tgt.name}: {'; '.join(parts)}; replace them with supported ops "
                   "(e.g. swap in hardware-aware blocks)")


def _memory_verdict(prof: Profile, tgt: Target, precision: str) -> Verdict:
    weights = prof.model_size_bytes.get(precision, prof.params * PRECISION_BITS[precision] // 8)
    need = weights + prof.peak_activation_bytes
    limit = tgt.usable_memory_bytes
    ok = need <= limit
    msg = (f"weights {_size(weights)} + peak activations {_size(prof.peak_activation_bytes)} "
           f"{'fit' if ok else 'do not fit'} in {_size(limit)} "
           f"({tgt.memory_share:.0%} of {_size(tgt.memory_bytes)})")
    if not ok:
        msg += "; prune, quantize or reduce the input size"
    return Verdict("memory", ok, need / 1e6, limit / 1e6, "MB", msg)


def _latency_verdict(prof: Profile, tgt: Target, layers: list[LayerLatency]) -> Verdict:
    latency = sum(r.latency_ms for r in layers)
    n_mem = sum(r.bound == "memory" for r in layers)
    detail = f"roofline over {len(layers)} layers ({n_mem} memory-bound)"
    if prof.unsupported:
        detail += f"; ops counted as 0 MACs: {', '.join(sorted(prof.unsupported))}"
    if tgt.latency_budget_ms is None:
        return Verdict("latency", None, latency, None, "ms", f"{detail}; {tgt.name} sets no latency budget")
    lo, hi = tgt.latency_budget_ms
    ok = latency <= hi
    msg = f"estimated {latency:.3g} ms {'within' if ok else 'over'} the {lo:g}-{hi:g} ms budget; {detail}"
    if not ok:
        msg += "; cut MACs/traffic in the slowest layers"
    return Verdict("latency", ok, latency, hi, "ms", msg)


def _fps_verdict(tgt: Target, latency_ms: float, fps: float | None) -> Verdict:
    achievable = 1e3 / latency_ms if latency_ms > 0 else float("inf")
    required = max([f for f in (fps, tgt.min_fps) if f is not None], default=None)
    if required is None:
        return Verdict("fps", None, achievable, None, "FPS", f"estimated {achievable:.1f} FPS; no FPS required")
    ok = achievable >= required
    why = " (Teams/Zoom certification)" if tgt.min_fps is not None and required == tgt.min_fps else ""
    return Verdict("fps", ok, achievable, required, "FPS",
                   f"estimated {achievable:.1f} FPS {'>=' if ok else '<'} required {required:g}{why}")


def _bandwidth_verdict(prof: Profile, tgt: Target, fps: float | None) -> Verdict:
    rate = fps if fps is not None else tgt.min_fps
    limit = tgt.usable_bandwidth_gbps
    if rate is None:
        return Verdict("bandwidth", None, prof.traffic_bytes / 1e6, None, "MB/frame",
                       f"{_size(prof.traffic_bytes)} traffic per frame; give fps to check it against "
                       f"{limit:.3g} GB/s")
    need = prof.traffic_bytes * rate / 1e9
    ok = need <= limit
    msg = (f"{_size(prof.traffic_bytes)}/frame x {rate:g} FPS = {need:.4g} GB/s "
           f"{'<=' if ok else '>'} {limit:.2f} GB/s ({tgt.bandwidth_share:.0%} of {tgt.memory_bandwidth_gbps:g} "
           "GB/s shared)")
    if not ok:
        msg += "; reduce feature-map sizes early (S2D) or the precision"
    return Verdict("bandwidth", ok, need, limit, "GB/s", msg)


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"
