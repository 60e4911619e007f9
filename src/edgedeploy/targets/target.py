"""Target hardware profiles: a frozen ``Target`` loaded from a shipped or user YAML file."""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import TargetError

#: Bits per value of every precision a target may list.
PRECISION_BITS: Mapping[str, int] = MappingProxyType(
    {"fp32": 32, "bf16": 16, "fp16": 16, "int16": 16, "int8": 8, "int4": 4})
PROFILES_DIR = Path(__file__).parent / "profiles"

_REQUIRED = ("name", "description", "precisions", "peak_ops_per_s", "memory_bandwidth_gbps", "memory_bytes")
_OPTIONAL = ("bandwidth_share", "memory_share", "latency_budget_ms", "min_fps", "supported_ops",
             "supported_onnx_ops", "extras", "host")


def normalize_op(op: str) -> str:
    """Canonical spelling of an op name for matching: ``aten.relu_.default`` and ``ReLU`` both give ``relu``."""
    name = op.rsplit("/", 1)[-1]
    if name.startswith("aten."):
        name = name[5:].split(".", 1)[0]
    return name.rstrip("_").replace("_", "").lower()


@dataclass(frozen=True)
class Target:
    """A device budget: precisions, peak compute, memory, bandwidth, latency/FPS budget and supported ops."""

    name: str
    description: str
    precisions: tuple[str, ...]
    peak_ops_per_s: Mapping[str, float]            # ops = 2 per MAC, by precision
    memory_bandwidth_gbps: float                   # DRAM peak, GB/s (1e9 bytes)
    memory_bytes: int                              # DRAM size
    bandwidth_share: float = 1.0                   # part of the bandwidth left to the model
    memory_share: float = 1.0                      # part of the memory left to the model
    latency_budget_ms: tuple[float, float] | None = None   # (min, max) acceptable latency
    min_fps: float | None = None
    supported_ops: frozenset[str] | None = None    # normalized profiler op names; None = every op
    supported_onnx_ops: frozenset[str] | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""                               # the YAML file it came from

    def __hash__(self) -> int:
        return hash((self.name, self.source))

    @property
    def usable_bandwidth_gbps(self) -> float:
        """Bandwidth the model may use: peak x share."""
        return self.memory_bandwidth_gbps * self.bandwidth_share

    @property
    def usable_memory_bytes(self) -> int:
        """Memory the model may use: size x share."""
        return int(self.memory_bytes * self.memory_share)

    def supports_op(self, op: str, onnx: bool = False) -> bool:
        """Whether the target runs ``op`` (a profiler op name, or an ONNX op type with ``onnx=True``)."""
        allowed = self.supported_onnx_ops if onnx and self.supported_onnx_ops is not None else self.supported_ops
        return allowed is None or normalize_op(op) in allowed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return {
            "name": self.name, "description": self.description, "precisions": list(self.precisions),
            "peak_ops_per_s": dict(self.peak_ops_per_s), "memory_bandwidth_gbps": self.memory_bandwidth_gbps,
            "bandwidth_share": self.bandwidth_share, "memory_bytes": self.memory_bytes,
            "memory_share": self.memory_share,
            "latency_budget_ms": list(self.latency_budget_ms) if self.latency_budget_ms else None,
            "min_fps": self.min_fps,
            "supported_ops": sorted(self.supported_ops) if self.supported_ops is not None else "all",
            "supported_onnx_ops": sorted(self.supported_onnx_ops) if self.supported_onnx_ops is not None else None,
            "extras": dict(self.extras), "source": self.source,
        }

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str]) -> Target:
        """Load a shipped target by name (``myriadx``) or a user's YAML file by path."""
        if isinstance(name_or_path, Target):
            return name_or_path
        text = str(name_or_path)
        if text in available_targets():
            return _from_file(PROFILES_DIR / f"{text}.yaml")
        path = Path(text)
        if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
            if not path.is_file():
                raise TargetError(f"target file {path} does not exist; give a YAML path or one of: "
                                  f"{', '.join(available_targets())}")
            return _from_file(path)
        raise TargetError(f"unknown target {text!r}; valid targets: {', '.join(available_targets())} "
                          "(or the path of your own target YAML)")


def available_targets() -> list[str]:
    """Names of the shipped targets (``*_ops.yaml`` files beside them are op lists, not targets)."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml") if not p.stem.endswith("_ops"))


# ---------------------------------------------------------------- YAML parsing and validation

def _from_file(path: Path) -> Target:
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


def _parse(data: dict[str, Any], path: Path) -> Target:
    def bad(key: str, why: str) -> TargetError:
        return TargetError(f"target file {path}: field {key!r} {why}")

    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise bad(unknown[0], f"is not a target field; valid fields: {', '.join(_REQUIRED + _OPTIONAL)}")
    for key in _REQUIRED:
        if key not in data:
            raise bad(key, "is missing; every target needs " + ", ".join(_REQUIRED))

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

    if data.get("host") is not None:
        data = {**data, **host_estimate(data["host"], path)}
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
    return Target(
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


# ---------------------------------------------------------------- this host's CPU

def host_estimate(host: Any, path: Path | str = "cpu.yaml", cpuinfo: str | None = None,
                  cores: int | None = None, mem_bytes: int | None = None,
                  max_freq_khz: int | None = None) -> dict[str, Any]:
    """Estimate this CPU's peak ops/s per precision, DRAM bandwidth and memory from its flags, cores and clock."""
    if not isinstance(host, dict) or not isinstance(host.get("ops_per_cycle_per_core"), list):
        raise TargetError(f"target file {path}: field 'host' must hold an 'ops_per_cycle_per_core' list")
    cpuinfo = _read("/proc/cpuinfo") if cpuinfo is None else cpuinfo
    flags = set(_cpuinfo_field(cpuinfo, "flags").split()) or set(_cpuinfo_field(cpuinfo, "Features").split())
    model = _cpuinfo_field(cpuinfo, "model name") or _cpuinfo_field(cpuinfo, "Hardware") or "unknown CPU"
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    ghz, clock_src = _clock_ghz(cpuinfo, host, path, max_freq_khz)
    per_cycle: dict[str, float] = {}
    used: dict[str, str] = {}
    for row in host["ops_per_cycle_per_core"]:
        if not isinstance(row, dict) or row.get("precision") not in PRECISION_BITS \
                or not isinstance(row.get("ops"), int | float):
            raise TargetError(f"target file {path}: field 'host.ops_per_cycle_per_core' row {row!r} needs "
                              "flag, precision (one of " + ", ".join(PRECISION_BITS) + ") and ops")
        prec, flag = row["precision"], row.get("flag")
        if prec not in per_cycle and (flag is None or flag in flags):
            per_cycle[prec] = float(row["ops"])
            used[prec] = flag or "none"
    if mem_bytes is None:
        kb = re.search(r"MemTotal:\s+(\d+)\s*kB", _read("/proc/meminfo"))
        mem_bytes = int(kb.group(1)) * 1024 if kb else 8 * 2**30
    gbps_core = host.get("dram_gbps_per_core", 10.0)
    if isinstance(gbps_core, bool) or not isinstance(gbps_core, int | float) or gbps_core <= 0:
        raise TargetError(f"target file {path}: field 'host.dram_gbps_per_core' must be a positive number")
    order = [p for p in PRECISION_BITS if p in per_cycle]
    return {
        "description": f"this host: {model}, {cores} cores at {ghz:.2f} GHz (peak figures are estimates)",
        "precisions": order,
        "peak_ops_per_s": {p: per_cycle[p] * cores * ghz * 1e9 for p in order},
        "memory_bandwidth_gbps": float(gbps_core) * cores,
        "memory_bytes": mem_bytes,
        "extras": {"cpu_model": model, "cores": cores, "clock_ghz": round(ghz, 3), "clock_source": clock_src,
                   "ops_per_cycle_per_core": {p: per_cycle[p] for p in order},
                   "from_flags": {p: used[p] for p in order}, "estimate": True},
    }


def _clock_ghz(cpuinfo: str, host: dict[str, Any], path: Path | str,
               max_freq_khz: int | None) -> tuple[float, str]:
    if max_freq_khz is None:
        text = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").strip()
        max_freq_khz = int(text) if text.isdigit() else None
    if max_freq_khz:
        return max_freq_khz / 1e6, "cpufreq cpuinfo_max_freq"
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo, re.M)]
    if mhz and max(mhz) > 0:
        return max(mhz) / 1e3, "/proc/cpuinfo cpu MHz"
    default = host.get("clock_ghz", 2.0)
    if isinstance(default, bool) or not isinstance(default, int | float) or default <= 0:
        raise TargetError(f"target file {path}: field 'host.clock_ghz' must be a positive number of GHz")
    return float(default), "host.clock_ghz default"


def _cpuinfo_field(cpuinfo: str, key: str) -> str:
    m = re.search(rf"^{re.escape(key)}\s*:\s*(.*)$", cpuinfo, re.M)
    return m.group(1).strip() if m else ""


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
