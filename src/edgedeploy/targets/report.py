"""What ``check`` returns: one Verdict per budget, the per-layer roofline estimate, and the CheckReport."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any


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
    """Estimate for one layer: max(compute time, memory time) of the roofline, times its op class's calibrated
    factor (1 uncalibrated, 0 when the compiler folds the layer into its producer), plus a fixed overhead."""

    name: str
    op: str
    compute_ms: float
    memory_ms: float
    op_class: str = ""
    factor: float = 1.0
    overhead_ms: float = 0.0

    @property
    def latency_ms(self) -> float:
        """The layer's estimated time: the slower of compute and memory, scaled, plus its overhead."""
        return max(self.compute_ms, self.memory_ms) * self.factor + self.overhead_ms

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
    estimate: Any = None                # the LatencyEstimate (targets.latency) the latency verdicts used

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
        """Estimated latency per frame: the calibrated estimate (incl. transfer and fixed costs) when there is
        one, else the sum of the layers' times."""
        if self.estimate is not None:
            return float(self.estimate.ms)
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
            "latency": ({k: v for k, v in self.estimate.to_dict().items() if k != "layers"}
                        if self.estimate is not None else None),
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
        from ..metrics.render import plain_text
        from .render import report_renderable

        return plain_text(report_renderable(self))
