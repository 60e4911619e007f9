"""Report sections of the adaptive-computation steps: early exits (``early_exit``) and Mixture of Depths (``mod``)."""
from __future__ import annotations

from typing import Any

from . import figures as fg
from .html import esc, key_values, ms, num, si, table
from .rundir import RunRecord, StepRecord
from .sections import Section, register_section


@register_section("early_exit")
def early_exit_section(step: StepRecord, run: RunRecord) -> Section:
    """Thresholds, staged vs full accuracy on held-out and test splits, MACs saved, latency; the trade-off plot."""
    cal = step.data.get("calibration") or {}
    names = cal.get("exit_names") or []
    rows = []
    for split in ("held_out", "test"):
        s = cal.get(split)
        if s:
            rows.append((esc(split.replace("_", "-")), num(s.get("samples")), num(s.get("full_accuracy"), 4),
                         num(s.get("accuracy"), 4), f"{s.get('drop', 0):+.2f}", si(s.get("macs_per_sample")),
                         f"{100 * (s.get('saving') or 0):.1f}%", esc(s.get("exit_histogram"))))
    unit = "pt accuracy drop" if cal.get("objective") == "max_accuracy_drop" else "× full MACs"
    html = (f"<p>exits after {esc(', '.join(names[:-1]))}; {esc(cal.get('criterion'))} thresholds "
            f"{esc(', '.join(f'{t:.4f}' for t in cal.get('thresholds', [])))} chosen on the held-out split for "
            f"≤ {num(cal.get('asked'))} {unit}"
            + (f" (test gap {cal['gap']:+.2f})" if isinstance(cal.get("gap"), (int, float)) else "") + "</p>"
            + table(("split", "samples", "full top-1", "staged top-1", "drop pt", "MACs/sample", "MACs saved",
                     "exits taken"), rows, numeric=(1, 2, 3, 4, 5, 6)))
    latency = step.data.get("latency") or {}
    if latency:
        html += key_values([(f"{rt} (batch 1)", f"full {ms(r.get('full_ms'))} → staged {ms(r.get('staged_ms'))} "
                                                f"per sample, <b>×{num(r.get('speedup'))}</b>")
                            for rt, r in latency.items()])
    parity = ((step.data.get("export") or {}).get("parity")) or {}
    if parity:
        html += key_values([(f"{rt} vs torch", f"{d['decisions']['labels_equal']}/{d['decisions']['samples']} labels, "
                                              f"{d['decisions']['exits_equal']}/{d['decisions']['samples']} exits equal "
                                              f"on {esc(', '.join(d.get('checked', [])))}")
                            for rt, d in parity.items()])
    fig = tradeoff_figure(cal) if cal.get("curve") else None
    return Section(html, [fig] if fig else [])


def tradeoff_figure(cal: dict[str, Any]) -> fg.Figure:
    """Accuracy vs MACs per sample as one threshold sweeps every exit, the operating points, and exits taken."""
    def draw(cal: dict[str, Any]) -> Any:
        fig, (ax, bx) = fg._new(7.6, 3.2, cols=2)
        ax.grid(axis="y", color="#e5e7eb", linewidth=0.6)
        curve = sorted(cal["curve"], key=lambda p: p["macs_fraction"])
        ax.plot([100 * p["macs_fraction"] for p in curve], [p["accuracy"] for p in curve], color=fg.COLORS[0],
                linewidth=1.2, label="one threshold for every exit")
        pts = cal.get("operating_points") or []
        ax.scatter([100 * p["macs_fraction"] for p in pts], [p["accuracy"] for p in pts], color=fg.COLORS[1],
                   zorder=3, s=22, label="per-exit search (≤ 0…5 pt)")
        test = cal.get("test") or cal.get("held_out") or {}
        if test:
            ax.scatter([100 * test["macs_fraction"]], [test["accuracy"]], marker="*", s=140, color="#111827",
                       zorder=4, label="chosen")
            ax.axhline(test["full_accuracy"], color="#6b7280", linestyle=":", linewidth=1, label="full model")
        ax.set_xlabel("MACs per sample (% of the full model)")
        ax.set_ylabel("top-1 (%)")
        ax.legend(loc="lower right", fontsize=7.5)
        hist = test.get("exit_histogram") or []
        names = [fg._short(n, 14) for n in cal.get("exit_names", [])][:len(hist)]
        bx.bar(range(len(hist)), hist, color=fg.COLORS[2])
        bx.set_xticks(range(len(hist)), names, rotation=20)
        bx.set_ylabel("samples")
        bx.set_title("exit taken (test split)", loc="left")
        return fig

    return fg.Figure("fig-early-exit", "Early exits: accuracy vs compute", fg._svg(draw, cal, salt="early-exit"),
                     "Left: staged accuracy against MACs per sample; the star is the calibrated operating point. "
                     "Right: how many test samples left at each exit.")


@register_section("mod")
def mod_section(step: StepRecord, run: RunRecord) -> Section:
    """Which blocks route tokens, at what capacity, and the MACs before and after."""
    d = step.data
    return Section(key_values([("routed blocks", esc(", ".join(d.get("routed", [])))),
                               ("capacity", num(d.get("capacity"))),
                               ("MACs", f"{si(d.get('macs_dense'))} → {si(d.get('macs_routed'))} "
                                        f"(×{num(d.get('macs_ratio'))})")]))
