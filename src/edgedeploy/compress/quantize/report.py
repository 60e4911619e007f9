"""QuantReport: size, accuracy, latency, energy and per-layer error before/after quantization."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...metrics.energy import MAC_PARTS, PJ_45NM

# Compute energy per multiply-accumulate at 45 nm (the tutorial's table, via metrics.energy), in pJ:
# fp32 3.7 + 0.9, fp16 1.1 + 0.4, int8 0.2 + 0.1 (int8 products accumulate in int32).
PJ_PER_MAC = {p: PJ_45NM[mult] + PJ_45NM[add] for p, (mult, add) in MAC_PARTS.items()}


def energy_pj(macs: int, precision: str) -> float:
    """Compute energy (pJ) of ``macs`` multiply-accumulates at ``precision`` (fp32/fp16/int8)."""
    return macs * PJ_PER_MAC[precision]


@dataclass
class LayerReport:
    """One quantizable layer: its precision after quantization, cost, and output error vs FP32."""

    name: str
    op: str
    module: str
    macs: int
    precision: str
    energy_pj: float
    sqnr_db: float | None = None
    sensitivity: float | None = None      # accuracy drop (points) or SQNR when only this layer is quantized


@dataclass
class QuantReport:
    """Before/after numbers of one quantization run, measured on the backend's runtime."""

    mode: str
    backend: str
    size_before_bytes: int
    size_after_bytes: int
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    output_max_abs_error: float | None = None
    output_cosine: float | None = None           # mean over samples of cos(FP32 output, quantized output)
    output_cosine_min: float | None = None
    latency_before_ms: float | None = None
    latency_after_ms: float | None = None
    threads: int = 1
    energy_before_pj: float = 0.0
    energy_after_pj: float = 0.0
    layers: list[LayerReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def accuracy_drop(self) -> float | None:
        """Top-1 points lost (positive = worse)."""
        if self.accuracy_before is None or self.accuracy_after is None:
            return None
        return self.accuracy_before - self.accuracy_after

    @property
    def speedup(self) -> float | None:
        """Latency before / after on the same runtime (>1 = faster)."""
        if not self.latency_before_ms or not self.latency_after_ms:
            return None
        return self.latency_before_ms / self.latency_after_ms

    @property
    def compression(self) -> float:
        """Size before / size after."""
        return self.size_before_bytes / max(self.size_after_bytes, 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with derived ratios (JSON-safe: inf becomes None)."""
        d = asdict(self)
        d.update(accuracy_drop=self.accuracy_drop, speedup=self.speedup, compression=self.compression)
        for layer in d["layers"]:
            if layer["sqnr_db"] is not None and math.isinf(layer["sqnr_db"]):
                layer["sqnr_db"] = None
        return d

    def to_json(self, path: str | Path) -> Path:
        """Write the report as JSON, atomically."""
        from ..._io import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    def layer_table(self) -> Any:
        """Per-layer rich table: op, MACs, precision, energy, SQNR, sensitivity."""
        from rich.table import Table

        t = Table(title=f"per-layer quantization ({self.mode}, {self.backend})")
        t.add_column("layer", overflow="fold")
        for col in ("op", "MACs", "precision", "energy pJ", "SQNR dB", "sensitivity"):
            t.add_column(col, justify="left" if col in ("op", "precision") else "right")
        for lr in self.layers:
            t.add_row(lr.module or lr.name, lr.op, f"{lr.macs:,}", lr.precision, f"{lr.energy_pj:,.0f}",
                      "-" if lr.sqnr_db is None else f"{lr.sqnr_db:.1f}",
                      "-" if lr.sensitivity is None else f"{lr.sensitivity:.2f}")
        return t

    def summary_table(self) -> Any:
        """Before/after rich table."""
        from rich.table import Table

        def fmt(v: float | None, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        t = Table(title=f"quantize {self.mode} via {self.backend}")
        for col in ("", "before", "after", "ratio"):
            t.add_column(col, justify="right")
        t.add_row("size (KB)", f"{self.size_before_bytes / 1024:,.1f}", f"{self.size_after_bytes / 1024:,.1f}",
                  f"x{self.compression:.2f}")
        t.add_row("top-1 (%)", fmt(self.accuracy_before, ".2f"), fmt(self.accuracy_after, ".2f"),
                  "drop " + fmt(self.accuracy_drop, "+.2f"))
        t.add_row(f"latency ms ({self.threads} thr)", fmt(self.latency_before_ms, ".3f"),
                  fmt(self.latency_after_ms, ".3f"), "x" + fmt(self.speedup, ".2f"))
        t.add_row("energy (nJ, MACs)", f"{self.energy_before_pj / 1e3:,.1f}", f"{self.energy_after_pj / 1e3:,.1f}",
                  f"x{self.energy_before_pj / max(self.energy_after_pj, 1e-9):.2f}")
        t.add_row("output error", "", "max abs " + fmt(self.output_max_abs_error, ".4g"),
                  "cos " + fmt(self.output_cosine, ".5f"))
        return t

    def __str__(self) -> str:
        import io

        from rich.console import Console

        buf = io.StringIO()
        console = Console(width=110, file=buf)
        console.print(self.summary_table())
        if self.layers:
            console.print(self.layer_table())
        for n in self.notes:
            console.print(f"note: {n}")
        return buf.getvalue()
