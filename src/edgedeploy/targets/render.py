"""Rich tables for targets and check reports (the CLI and ``print(report)`` use these)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from .target import Target

_STATUS = {"PASS": "[green]PASS[/]", "FAIL": "[bold red]FAIL[/]", "UNKNOWN": "[yellow]UNKNOWN[/]",
           "info": "[dim]info[/]"}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def _with_unit(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    return f"{_fmt(value)} {unit}".strip() if unit else _fmt(value)


def report_renderable(report: Any, top: int = 5) -> Any:
    """Verdict table plus the slowest layers of the roofline estimate."""
    from rich.console import Group
    from rich.table import Table

    overall = _STATUS[report.status]
    fps = f", {report.fps:g} FPS" if report.fps else ""
    table = Table(title=f"{report.model} on {report.target} ({report.precision}{fps}): {overall}",
                  title_justify="left")
    for col, just in (("check", "left"), ("verdict", "center"), ("measured", "right"), ("limit", "right"),
                      ("details", "left")):
        table.add_column(col, justify=just, overflow="fold", ratio=4 if col == "details" else None)
    for v in report.verdicts:
        table.add_row(v.name, _STATUS[v.status], _with_unit(v.measured, v.unit), _with_unit(v.limit, v.unit),
                      v.message)
    notes = [f"[dim]note:[/] {n}" for n in report.notes]
    if not report.layers or top <= 0:
        return Group(table, *notes)
    slow = Table(title=f"slowest layers (roofline estimate, {report.latency_ms:.3f} ms total)", title_justify="left")
    for col in ("layer", "op", "compute ms", "memory ms", "bound"):
        slow.add_column(col, justify="left" if col in ("layer", "op", "bound") else "right")
    for r in sorted(report.layers, key=lambda r: r.latency_ms, reverse=True)[:top]:
        slow.add_row(r.name, r.op, f"{r.compute_ms:.4f}", f"{r.memory_ms:.4f}", r.bound)
    return Group(table, *notes, slow)


def targets_table(targets: Iterable[Target]) -> Any:
    """One row per target: precisions, peak compute, bandwidth and memory left to the model, budgets."""
    from rich.table import Table

    table = Table(title="targets (bandwidth and memory: usable by the model of the total)", title_justify="left")
    descriptions: list[str] = []
    for col in ("name", "peak TOPS", "bandwidth GB/s", "memory MB", "latency ms", "min FPS",
                "ops"):
        table.add_column(col, overflow="fold")
    for t in targets:
        peak = "\n".join(f"{p} {t.peak_ops_per_s[p] / 1e12:.3g}" for p in t.precisions)
        bw = f"{t.usable_bandwidth_gbps:.3g} of {t.memory_bandwidth_gbps:.3g}"
        mem = f"{t.usable_memory_bytes / 1e6:.0f} of {t.memory_bytes / 1e6:.0f}"
        budget = f"{t.latency_budget_ms[0]:g}-{t.latency_budget_ms[1]:g}" if t.latency_budget_ms else "-"
        ops = "all" if t.supported_ops is None else str(len(t.supported_ops))
        table.add_row(t.name, peak, bw, mem, budget, _fmt(t.min_fps), ops)
        descriptions.append(f"[bold]{t.name}[/]: {t.description}")
    from rich.console import Group

    return Group(table, *descriptions)
