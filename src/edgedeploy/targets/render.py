"""Rich tables for targets and check reports (the CLI and ``print(report)`` use these)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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
    est = report.estimate
    calibrated = est is not None and est.calibrated
    what = (f"calibrated estimate {est.text}: compute {est.compute_ms:.3g} + transfer {est.transfer_ms:.3g} + "
            f"overhead {est.overhead_ms:.3g} ms" if calibrated else
            f"roofline estimate, {report.latency_ms:.3f} ms total")
    slow = Table(title=f"slowest layers ({what})", title_justify="left")
    cols = ("layer", "op", "class", "compute ms", "memory ms", "bound", "x factor", "ms") if calibrated else \
        ("layer", "op", "compute ms", "memory ms", "bound")
    for col in cols:
        slow.add_column(col, justify="left" if col in ("layer", "op", "class", "bound") else "right")
    for r in sorted(report.layers, key=lambda r: r.latency_ms, reverse=True)[:top]:
        cells = [r.name, r.op] + ([r.op_class] if calibrated else []) + [f"{r.compute_ms:.4f}", f"{r.memory_ms:.4f}",
                                                                         r.bound]
        slow.add_row(*cells, *([f"{r.factor:.3g}", f"{r.latency_ms:.4f}"] if calibrated else []))
    return Group(table, *notes, slow)


def calibration_table(cal: Any) -> Any:
    """A calibration: its coefficients, then the leave-one-out error of every measurement."""
    from rich.console import Group
    from rich.table import Table

    low, high = cal.bounds
    coeffs = Table(title=f"{cal.target} latency calibration ({cal.precision}, fitted {cal.fitted}, ridge "
                         f"{cal.ridge:g}): band -{low:.0%}/+{high:.0%}", title_justify="left")
    coeffs.add_column("coefficient")
    coeffs.add_column("value", justify="right")
    coeffs.add_column("scales", overflow="fold")
    for name, value in cal.coefficients.items():
        what = ", ".join(cal.groups.get(name, ())) or {
            "per_layer_ms": "every executed layer (ms)", "fixed_ms": "every inference (ms)",
            "transfer": f"I/O at {cal.link_mb_s or 0:g} MB/s",
            "spill": "DRAM time of layers overflowing on-chip memory",
        }.get(name, "")
        coeffs.add_row(name, f"{value:.4g}", what + (" (compute-bound)" if name in cal.compute_groups else ""))
    loo = Table(title="leave-one-out: each row predicted by the model fitted without it", title_justify="left")
    for col in ("model", "input", "measured ms", "predicted ms", "error"):
        loo.add_column(col, justify="left" if col in ("model", "input") else "right")
    for r in cal.loo:
        err = f"{100 * r.error:+.1f}%"
        loo.add_row(r.model, "x".join(map(str, r.input_shape)), f"{r.measured_ms:.4g}", f"{r.predicted_ms:.4g}",
                    err if abs(r.error) <= 0.2 else f"[yellow]{err}[/]" if abs(r.error) <= 0.35 else f"[red]{err}[/]")
    share = ", ".join(f"{v:.0%} within {k}" for k, v in cal.within.items())
    lines = [f"{len(cal.loo)} rows: {share}. Conditions: {cal.conditions or '-'}"]
    if cal.throughput:
        lo, mid, hi = cal.throughput
        lines.append(f"Throughput (FPS) = k x 1000 / latency with k {lo:.2f}-{hi:.2f} (median {mid:.2f}) over the "
                     "rows that publish both")
    return Group(coeffs, loo, *lines)


def targets_table(targets: Iterable[Any]) -> Any:
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
