"""Rich rendering of a Profile: a per-layer table and a totals panel."""
from __future__ import annotations

from typing import Any


def si(n: float, unit: str = "") -> str:
    """Human number with SI prefix: 1.82 G, 46.858 M, 352."""
    for div, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3f} {p}{unit}".rstrip()
    return f"{n:g} {unit}".rstrip()


def nbytes(n: float) -> str:
    """Bytes in KB/MB/GB (decimal)."""
    return si(n, "B")


def _shape(shapes: tuple[tuple[int, ...], ...]) -> str:
    return ", ".join("x".join(map(str, s)) for s in shapes[:2]) + (" …" if len(shapes) > 2 else "")


def profile_renderable(p: Any, top: int | None = None, compact: bool = False) -> Any:
    """A rich Group: per-layer table (optionally the ``top`` layers by traffic) and totals.

    ``compact`` (for narrow terminals) leaves out the shape and weight/read/write columns.
    """
    from rich.console import Group
    from rich.table import Table

    rows = p.layers if top is None else sorted(p.layers, key=lambda r: -r.traffic_bytes)[:top]
    t = Table(title=f"{p.model} @ {p.precision} — {'per layer' if top is None else f'top {top} layers by traffic'}",
              show_lines=False, header_style="bold")
    cols = ["layer", "op", "input", "output", "params", "MACs", "weights", "read", "write", "traffic"]
    keep = [c for c in cols if not compact or c not in ("input", "output", "weights", "read", "write")]
    for col in keep:
        t.add_column(col, justify="left" if col in cols[:4] else "right", overflow="fold")
    for r in rows:
        cells = dict(zip(cols, (r.name, r.op, _shape(r.input_shapes), _shape(r.output_shapes), si(r.params),
                                si(r.macs), nbytes(r.weight_bytes), nbytes(r.read_bytes), nbytes(r.write_bytes),
                                nbytes(r.traffic_bytes))))
        t.add_row(*(cells[c] for c in keep))
    tot = Table(title="totals", show_header=False)
    tot.add_column(justify="left")
    tot.add_column(justify="right")
    bw = f"{p.bandwidth_gbps:.3f} GB/s at {p.fps:g} FPS" if p.bandwidth_gbps is not None else "— (give fps)"
    for k, v in (("parameters", si(p.params)), ("MACs", si(p.macs)), ("element-wise ops", si(p.elem_ops)),
                 ("model size", " / ".join(f"{k} {nbytes(v)}" for k, v in p.model_size_bytes.items())),
                 ("peak activation memory", nbytes(p.peak_activation_bytes)),
                 ("memory traffic per frame", nbytes(p.traffic_bytes)), ("bandwidth", bw),
                 ("energy per inference", f"{p.energy.total_uj:.2f} µJ (compute {p.energy.compute_uj:.2f}, "
                                          f"SRAM {p.energy.sram_uj:.2f}, DRAM {p.energy.dram_uj:.2f})"),
                 ("energy assumption", p.energy.assumption)):
        tot.add_row(k, v)
    parts: list[Any] = [t, tot]
    if p.unsupported:
        parts.append(f"[yellow]ops without a counting rule (counted as 0 MACs): "
                     f"{', '.join(f'{k}×{v}' for k, v in sorted(p.unsupported.items()))}[/]")
    return Group(*parts)


def to_text(p: Any, top: int | None = None, width: int = 160) -> str:
    """Plain-text rendering of a Profile (for str() and logs)."""
    return plain_text(profile_renderable(p, top), width)


def plain_text(renderable: Any, width: int = 140) -> str:
    """Render any rich renderable to plain text (no colour codes, nothing printed)."""
    from rich.console import Console

    console = Console(width=width, record=True, file=_Null(), color_system=None)
    console.print(renderable)
    return console.export_text()


class _Null:
    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        pass
