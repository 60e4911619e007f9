"""What every exporter returns: ``ExportResult`` (paths, parity, op histogram, warnings) and ``Parity``."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParityError


@dataclass(frozen=True)
class Parity:
    """Largest differences between an artifact's outputs and the reference's, and the tolerance applied.

    ``max_rel`` is the max abs error divided by the reference output's largest magnitude; an output
    passes when ``max_abs <= atol + rtol * max|reference|``.
    """

    reference: str
    runtime: str
    max_abs: float
    max_rel: float
    atol: float
    rtol: float
    outputs: dict[str, dict[str, float]] = field(default_factory=dict)
    checked: tuple[str, ...] = ()     # the input sets compared (the example, random, photos, ...)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)


def compare_outputs(got: Sequence[np.ndarray], ref: Sequence[np.ndarray], names: Sequence[str], *, atol: float,
                    rtol: float, runtime: str, reference: str, artifact: str | Path, hint: str = "") -> Parity:
    """Compare outputs pairwise; raise ParityError naming the first output over tolerance."""
    if len(got) != len(ref):
        raise ParityError(f"{artifact} has {len(got)} output(s) but {reference} gives {len(ref)}; "
                          "check output_names and that the model returns plain tensors")
    per: dict[str, dict[str, float]] = {}
    for name, g, r in zip(names, got, ref):
        g = np.asarray(g, dtype=np.float64)
        r = np.asarray(r, dtype=np.float64)
        if g.shape != r.shape:
            raise ParityError(f"output {name!r} of {artifact} has shape {g.shape} but {reference} gives {r.shape}")
        scale = float(np.abs(r).max()) if r.size else 0.0
        err = float(np.abs(g - r).max()) if r.size else 0.0
        if not np.isfinite(err):
            err = float("inf")
        per[name] = {"max_abs": err, "max_rel": err / max(scale, 1e-12), "ref_max": scale}
        limit = atol + rtol * scale
        if not err <= limit:
            raise ParityError(f"output {name!r} of {artifact} on {runtime} differs from {reference} by max abs "
                              f"{err:.3g} (max rel {err / max(scale, 1e-12):.3g}); tolerance is {limit:.3g} "
                              f"(atol {atol:g} + rtol {rtol:g} x max|ref| {scale:.3g}). {hint}".rstrip())
    return Parity(reference=reference, runtime=runtime, max_abs=max((p["max_abs"] for p in per.values()), default=0.0),
                  max_rel=max((p["max_rel"] for p in per.values()), default=0.0), atol=atol, rtol=rtol, outputs=per)


@dataclass(frozen=True)
class ExportResult:
    """One exported artifact: its main file, every file written, parity figures and graph facts."""

    path: Path
    format: str
    files: tuple[Path, ...]
    parity: Parity | None
    op_histogram: dict[str, int]
    warnings: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    manifest: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict."""
        return {"path": str(self.path), "format": self.format, "files": [str(f) for f in self.files],
                "parity": self.parity.to_dict() if self.parity else None, "op_histogram": dict(self.op_histogram),
                "warnings": list(self.warnings), "config": self.config, "details": self.details,
                "manifest": str(self.manifest) if self.manifest else None}

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"{self.format} export: {self.path}", show_header=False)
        t.add_row("files", ", ".join(f.name for f in self.files))
        if self.parity:
            p = self.parity
            on = f" on {', '.join(p.checked)}" if p.checked else ""
            t.add_row("parity", f"max abs {p.max_abs:.3g}, max rel {p.max_rel:.3g} vs {p.reference} on {p.runtime} "
                                f"(atol {p.atol:g}, rtol {p.rtol:g}){on}")
        top = sorted(self.op_histogram.items(), key=lambda kv: (-kv[1], kv[0]))
        t.add_row("ops", ", ".join(f"{k} x{v}" for k, v in top[:12]) + (" ..." if len(top) > 12 else ""))
        for w in self.warnings:
            t.add_row("[yellow]warning[/]", w)
        return t

    def __str__(self) -> str:
        p = self.parity
        par = f"; parity max abs {p.max_abs:.3g} vs {p.reference}" if p else ""
        return f"{self.format} -> {self.path} ({sum(self.op_histogram.values())} nodes{par})"
