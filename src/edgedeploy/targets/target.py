"""Target hardware profiles: a frozen ``Target`` loaded from a shipped or user YAML file."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TargetError
from .units import PRECISION_BITS, PROFILES_DIR, normalize_op  # noqa: F401  (re-exported)


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
        from .profile_yaml import read_fields

        if isinstance(name_or_path, Target):
            return name_or_path
        text = str(name_or_path)
        if text in available_targets():
            return cls(**read_fields(PROFILES_DIR / f"{text}.yaml"))
        path = Path(text)
        if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
            if not path.is_file():
                raise TargetError(f"target file {path} does not exist; give a YAML path or one of: "
                                  f"{', '.join(available_targets())}")
            return cls(**read_fields(path))
        raise TargetError(f"unknown target {text!r}; valid targets: {', '.join(available_targets())} "
                          "(or the path of your own target YAML)")


def available_targets() -> list[str]:
    """Names of the shipped targets (``*_ops.yaml`` and ``*_calibration.yaml`` beside them are op lists and latency
    calibrations, not targets)."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml") if not p.stem.endswith(("_ops", "_calibration")))
