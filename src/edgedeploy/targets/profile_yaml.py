"""Target YAML files: parse, validate (every error names the file and the field), the fields of a ``Target``."""
from __future__ import annotations

import math
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import TargetError
from .host import host_estimate
from .units import PRECISION_BITS, PROFILES_DIR, normalize_op

_REQUIRED = ("name", "description", "precisions", "peak_ops_per_s", "memory_bandwidth_gbps", "memory_bytes")
_OPTIONAL = ("bandwidth_share", "memory_share", "latency_budget_ms", "min_fps", "supported_ops",
             "supported_onnx_ops", "extras", "host", "calibration")


def read_fields(path: Path) -> dict[str, Any]:
    """Read and validate a target YAML file into ``Target`` fields (errors name the file and the field)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TargetError(f"cannot read target file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TargetError(f"target file {path} is not valid YAML{where}: {problem}; fix the syntax") from exc
    if not isinstance(data, dict):
        raise TargetError(f"target file {path} must be a mapping of fields ({', '.join(_REQUIRED)}), "
                          f"not {type(data).__name__}")
    return _parse(data, path)


def _parse(data: dict[str, Any], path: Path) -> dict[str, Any]:
    def bad(key: str, why: str) -> TargetError:
        return TargetError(f"target file {path}: field {key!r} {why}")

    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise bad(unknown[0], f"is not a target field; valid fields: {', '.join(_REQUIRED + _OPTIONAL)}")

    def text(key: str) -> str:
        if not isinstance(data[key], str) or not data[key].strip():
            raise bad(key, f"must be a non-empty string, got {data[key]!r}")
        return data[key]

    def number(key: str, value: Any, positive: bool = True, at_most: float | None = None) -> float:
        value = _yaml11_float(value)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise bad(key, f"must be a number, got {value!r}")
        if positive and value <= 0:
            raise bad(key, f"must be > 0, got {value!r}")
        if at_most is not None and value > at_most:
            raise bad(key, f"must be <= {at_most}, got {value!r}")
        return float(value)

    if data.get("host") is not None:           # this machine fills in what the file leaves out; its figures win
        estimate = host_estimate(data["host"], path)
        given_extras = data.get("extras") if isinstance(data.get("extras"), dict) else {}
        extras = {**estimate.pop("extras"), **given_extras}
        extras["from_file"] = sorted(k for k in estimate if k in data and k != "description")
        data = {**estimate, **data, "extras": extras}
    for key in _REQUIRED:
        if key not in data:
            raise bad(key, "is missing; every target needs " + ", ".join(_REQUIRED))

    def precision(key: str, value: Any) -> str:
        if value not in PRECISION_BITS:
            raise bad(key, f"has unknown precision {value!r}; valid precisions: {', '.join(PRECISION_BITS)}")
        return str(value)

    def op_list(key: str) -> frozenset[str] | None:
        value = data.get(key)
        if value is None or value == "all":
            return None
        if isinstance(value, str) and value.endswith((".yaml", ".yml")):
            ops_path = next((d / value for d in (path.parent, PROFILES_DIR) if (d / value).is_file()), Path(value))
            value = _ops_file(ops_path, bad(key, f"names {value}, which must be a YAML file (beside the target "
                                                 "or shipped) with a 'supported' list of op names"))
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise bad(key, f"must be a list of op names or 'all', got {value!r}")
        return frozenset(normalize_op(v) for v in value)

    precisions = data["precisions"]
    if not isinstance(precisions, list) or not precisions:
        raise bad("precisions", f"must be a non-empty list such as [fp16], got {precisions!r}")
    precs = tuple(precision("precisions", p) for p in precisions)
    peaks = data["peak_ops_per_s"]
    if not isinstance(peaks, dict):
        raise bad("peak_ops_per_s", f"must map precision -> ops/s (e.g. {{fp16: 1.0e12}}), got {peaks!r}")
    peak = {precision("peak_ops_per_s", k): number(f"peak_ops_per_s.{k}", v) for k, v in peaks.items()}
    missing = [p for p in precs if p not in peak]
    if missing:
        raise bad("peak_ops_per_s", f"has no figure for precision {missing[0]!r} listed in precisions")
    mem = _yaml11_float(data["memory_bytes"])
    mem = int(mem) if isinstance(mem, float) and mem.is_integer() else mem      # 5.36870912e+08 is fine
    if isinstance(mem, bool) or not isinstance(mem, int) or mem <= 0:
        raise bad("memory_bytes", f"must be a positive integer number of bytes, got {mem!r}")
    budget = data.get("latency_budget_ms")
    if budget is not None:
        if not isinstance(budget, dict) or set(budget) != {"min", "max"}:
            raise bad("latency_budget_ms", f"must be {{min: MS, max: MS}} or null, got {budget!r}")
        lo = number("latency_budget_ms.min", budget["min"])
        hi = number("latency_budget_ms.max", budget["max"])
        if lo > hi:
            raise bad("latency_budget_ms", f"has min {lo} > max {hi}")
        budget = (lo, hi)
    min_fps = data.get("min_fps")
    extras = data.get("extras") or {}
    if not isinstance(extras, dict):
        raise bad("extras", f"must be a mapping, got {extras!r}")
    if data.get("calibration") is not None:
        extras = {**extras, "calibration": _calibration_file(data["calibration"], path, bad)}
    return dict(
        name=text("name"), description=text("description"), precisions=precs,
        peak_ops_per_s=MappingProxyType(peak),
        memory_bandwidth_gbps=number("memory_bandwidth_gbps", data["memory_bandwidth_gbps"]),
        memory_bytes=mem,
        bandwidth_share=number("bandwidth_share", data.get("bandwidth_share", 1.0), at_most=1.0),
        memory_share=number("memory_share", data.get("memory_share", 1.0), at_most=1.0),
        latency_budget_ms=budget,
        min_fps=None if min_fps is None else number("min_fps", min_fps),
        supported_ops=op_list("supported_ops"), supported_onnx_ops=op_list("supported_onnx_ops"),
        extras=MappingProxyType(dict(extras)), source=str(path),
    )


def _calibration_file(value: Any, path: Path, bad: Any) -> str:
    """The latency calibration file a target names (beside it, or shipped), validated; its path."""
    from ..errors import CalibrationError
    from .calibration import read_calibration

    if not isinstance(value, str) or not value.endswith((".yaml", ".yml")):
        raise bad("calibration", f"must name a calibration YAML file, got {value!r}")
    cal_path = next((d / value for d in (path.parent, PROFILES_DIR) if (d / value).is_file()), None)
    if cal_path is None:
        raise bad("calibration", f"names {value}, which is neither beside the target nor shipped")
    try:
        read_calibration(cal_path)
    except CalibrationError as exc:
        raise TargetError(f"target file {path}: field 'calibration': {exc}") from exc
    return str(cal_path)            # a user's copy of a shipped target (another name, same device) keeps its model


def _ops_file(path: Path, error: TargetError) -> Any:
    """The ``supported`` list of an op-list YAML (e.g. myriadx_ops.yaml), or raise ``error``."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        raise error from None
    if not isinstance(data, dict) or not isinstance(data.get("supported"), list):
        raise error
    return data["supported"]


def _yaml11_float(value: Any) -> Any:
    """PyYAML reads ``1.0e12`` (no sign after e) as a string; accept it as the number a user meant."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
