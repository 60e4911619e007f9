"""QuantReport: size, accuracy, latency, energy and per-layer error before/after quantization."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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


@dataclass(frozen=True)
class OutputError:
    """How far one quantized output is from the float model: cosine per sample (mean, min) and max abs error."""

    name: str
    cosine_mean: float
    cosine_min: float
    max_abs: float


#: a quantized output whose mean cosine to float is below this (or min below ``POOR_MIN``) is flagged
POOR_MEAN, POOR_MIN = 0.99, 0.95


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
    outputs: list[OutputError] = field(default_factory=list)     # every model output, not only the first
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
        if self.energy_before_pj > 0:          # 0: no MACs counted (e.g. a graph with dynamic shapes)
            t.add_row("energy (nJ, MACs)", f"{self.energy_before_pj / 1e3:,.1f}",
                      f"{self.energy_after_pj / 1e3:,.1f}",
                      f"x{self.energy_before_pj / max(self.energy_after_pj, 1e-9):.2f}")
        else:
            t.add_row("energy (nJ, MACs)", "-", "-", "MACs unknown (dynamic shapes)")
        for o in self.outputs or []:
            t.add_row(f"output {o.name}", "", f"max abs {o.max_abs:.4g}",
                      f"cos {o.cosine_mean:.5f} (min {o.cosine_min:.4f})")
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


def output_errors(names: list[str], before: list[np.ndarray], after: list[np.ndarray]) -> list[OutputError]:
    """An OutputError for every output (float model ``before`` vs quantized ``after``)."""
    from ...onnx_utils import cosine_per_sample

    rows = []
    for name, yb, yq in zip(names, before, after):
        cos = cosine_per_sample(yb, yq)
        rows.append(OutputError(name, float(cos.mean()), float(cos.min()),
                                float(np.max(np.abs(yb.astype(np.float64) - yq)))))
    return rows


def build_layer_reports(report: QuantReport, layers: list[Any], matched: dict[str, tuple[str, bool]],
                        sqnr: dict[str, float], ignored: list[str]) -> None:
    """Fill ``report.layers`` (precision, energy, SQNR per quantizable layer) and the energy totals."""
    low = "fp16" if report.mode == "fp16" else "int8"
    for layer in layers:
        quantized = matched[layer.name][1] if layer.name in matched and low == "int8" else layer.name not in ignored
        precision = low if quantized else "fp32"
        report.layers.append(LayerReport(layer.name, layer.op, layer.module, layer.macs, precision,
                                         energy_pj(layer.macs, precision), sqnr.get(layer.name)))
    report.energy_before_pj = sum(energy_pj(ly.macs, "fp32") for ly in layers)
    report.energy_after_pj = sum(ly.energy_pj for ly in report.layers)


def review(report: QuantReport, config: Any) -> list[str]:
    """Warnings for a poor result: which output, how far, the worst layers by SQNR, and the fix."""
    notes = []
    poor = [o for o in report.outputs if o.cosine_mean < POOR_MEAN or o.cosine_min < POOR_MIN]
    drop = report.accuracy_drop
    if not poor and (drop is None or drop <= 1.0):
        return notes
    worst = sorted((ly for ly in report.layers if ly.sqnr_db is not None and ly.precision != "fp32"),
                   key=lambda ly: ly.sqnr_db)[:3]
    named = ", ".join(f"{ly.module or ly.name} ({ly.sqnr_db:.1f} dB)" for ly in worst) or "n/a (per_layer=False)"
    what = "; ".join(f"output {o.name} cosine {o.cosine_mean:.3f} (min {o.cosine_min:.3f})" for o in poor)
    if drop is not None and drop > 1.0:
        what = (what + "; " if what else "") + f"top-1 drop {drop:.2f} points"
    fix = (f"QuantConfig(keep_float={max(1, len(worst))}) keeps the most sensitive layers in float, or "
           f"QuantConfig(ignored=({', '.join(repr(ly.module or ly.name) for ly in worst[:2])},)) names them"
           if worst else "QuantConfig(keep_float=N) keeps the N most sensitive layers in float")
    notes.append(f"WARNING poor quantization result: {what}; lowest-SQNR layers: {named}; fix: {fix}")
    return notes
