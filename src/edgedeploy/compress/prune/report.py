"""PruneReport and PruneResult: what was removed, per layer, and what it costs now."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn


@dataclass(frozen=True)
class LayerChange:
    """One layer before/after: channel counts (structured) or non-zero weights (masked) or a removed block."""

    name: str
    kind: str                 # Conv2d, Linear, ... or "block" for a removed residual branch
    unit: str                 # "channels" (out/in), "weights" (non-zero of total), "block"
    before: tuple[int, ...]   # channels: (out, in); weights: (nonzero, total); block: (params,)
    after: tuple[int, ...]

    @property
    def removed_fraction(self) -> float:
        """Fraction removed: of output channels, of weights, or 1.0 for a removed block."""
        if self.unit == "block":
            return 1.0 if self.after[0] == 0 else 0.0
        return 1.0 - self.after[0] / self.before[0] if self.before[0] else 0.0


@dataclass
class PruneReport:
    """Per-layer distribution plus totals before/after (params, MACs, size) and honest notes."""

    granularity: str
    scope: str
    criterion: str
    amount: float
    layers: list[LayerChange]
    params_before: int
    params_after: int
    nonzero_after: int
    macs_before: int
    macs_after: int
    size_bytes_before: int
    size_bytes_after: int
    sparse_size_bytes: int            # size if zeros are stored sparsely (values + 1-bit map)
    removed: list[str] = field(default_factory=list)   # removed blocks (layer granularity)
    effective_macs: int | None = None  # MACs a sparsity-aware kernel would do (element/shape)
    steps: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def macs_ratio(self) -> float:
        """MACs before / after (dense execution)."""
        return self.macs_before / self.macs_after if self.macs_after else float("inf")

    @property
    def params_ratio(self) -> float:
        """Parameters before / after."""
        return self.params_before / self.params_after if self.params_after else float("inf")

    @property
    def sparsity(self) -> float:
        """Fraction of parameter entries that are zero after pruning."""
        return 1.0 - self.nonzero_after / self.params_after if self.params_after else 0.0

    def distribution(self) -> dict[str, float]:
        """Removed fraction per layer name."""
        return {c.name: c.removed_fraction for c in self.layers}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with derived ratios."""
        out = asdict(self)
        out.update(macs_ratio=self.macs_ratio, params_ratio=self.params_ratio, sparsity=self.sparsity)
        return out

    def to_json(self, path: str | Path) -> Path:
        """Write the report as JSON (atomically)."""
        from ..._io import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    def table(self) -> Any:
        """A rich Table of the per-layer changes."""
        from rich.table import Table

        t = Table(title=f"prune {self.granularity} / {self.scope} / {self.criterion}, amount {self.amount:g}")
        for col in ("layer", "kind", "before", "after", "removed"):
            t.add_column(col, justify="left" if col in ("layer", "kind") else "right")
        for c in self.layers:
            fmt = (lambda v: f"{v[0]}/{v[1]}") if c.unit == "weights" else (lambda v: "x".join(map(str, v)))
            t.add_row(c.name, c.kind, fmt(c.before), fmt(c.after), f"{100 * c.removed_fraction:.1f}%")
        return t

    def summary(self) -> str:
        """Totals and notes in a few lines."""
        lines = [f"params {self.params_before:,} -> {self.params_after:,} (x{1 / self.params_ratio:.3f}), "
                 f"MACs {self.macs_before:,} -> {self.macs_after:,} (x{1 / self.macs_ratio:.3f})",
                 f"size {self.size_bytes_before:,} B -> {self.size_bytes_after:,} B dense, "
                 f"{self.sparse_size_bytes:,} B sparse-stored; zeros {100 * self.sparsity:.1f}%"]
        if self.effective_macs is not None:
            lines.append(f"MACs a sparsity-aware kernel would do: {self.effective_macs:,}")
        if self.removed:
            lines.append(f"removed blocks: {', '.join(self.removed)}")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])

    def __str__(self) -> str:
        from io import StringIO

        from rich.console import Console

        buf = StringIO()
        Console(file=buf, width=110).print(self.table())
        return buf.getvalue() + self.summary()


@dataclass
class PruneResult:
    """The pruned model and its report."""

    model: nn.Module
    report: PruneReport
