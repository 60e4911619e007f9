"""The report's plots: static SVG drawn by matplotlib, inlined into the page.

Why static SVG from matplotlib: an SVG of a bar chart is a few tens of kB of plain text (a PNG of the same is
larger and blurs when zoomed), it needs no script (nothing to inline, nothing that can fail to load or be
blocked), it renders the same in every browser and in a file viewer, and its text stays searchable.
Interactive libraries (plotly, bokeh) would have to inline 3-4 MB of JavaScript to work offline.
We draw on ``matplotlib.figure.Figure`` without pyplot, so no global backend is switched and nothing needs
a display (the same guarantee as the Agg backend); text is kept as SVG text (``svg.fonttype: none``).
"""
from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Any

COLORS = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#0891b2", "#ca8a04", "#db2777", "#4b5563")
STATUS_COLORS = {"PASS": "#16a34a", "FAIL": "#dc2626", "UNKNOWN": "#d97706", "info": "#94a3b8"}
MAX_BARS = 30
ABOVE = {"loc": "lower right", "bbox_to_anchor": (1.0, 1.0), "borderaxespad": 0.2}   # legend above a bar chart


@dataclass(frozen=True)
class Figure:
    """One plot: an anchor id, a title, the inline SVG text and a caption saying what it shows."""

    id: str
    title: str
    svg: str
    caption: str = ""


def _new(width: float, height: float, cols: int = 1, sharey: bool = False) -> tuple[Any, Any]:
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, cols, sharey=sharey, squeeze=False)[0]
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="x", color="#e5e7eb", linewidth=0.6)
        ax.set_axisbelow(True)
    return fig, axes


def to_svg(fig: Any, salt: str) -> str:
    """The figure as inline SVG text: no XML prolog, no metadata, ids salted so figures never share ids."""
    from matplotlib import rc_context

    buf = io.StringIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)


def _short(name: str, n: int = 34) -> str:
    return name if len(name) <= n else name[: n // 2 - 1] + "…" + name[-(n - n // 2):]


def _rc() -> dict[str, Any]:
    return {"font.size": 9, "font.family": "sans-serif", "axes.titlesize": 10,
            "axes.titleweight": "bold", "axes.labelsize": 9, "legend.fontsize": 8.5, "legend.frameon": False}


def _svg(draw: Any, *args: Any, salt: str) -> str:
    from matplotlib import rc_context

    with rc_context(_rc()):
        fig = draw(*args)
        return to_svg(fig, salt)


def latency_figure(rows: list[dict[str, Any]]) -> Figure:
    """Median latency (bar) and p90 (whisker) of every measured artifact x runtime x threads, coloured by runtime."""
    def draw(rows: list[dict[str, Any]]) -> Any:
        fig, (ax,) = _new(7.4, 0.9 + 0.32 * len(rows))
        runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
        color = {rt: COLORS[i % len(COLORS)] for i, rt in enumerate(runtimes)}
        y = list(range(len(rows)))[::-1]
        med = [r["median_ms"] for r in rows]
        up = [max(r.get("p90_ms", r["median_ms"]) - r["median_ms"], 0.0) for r in rows]
        ax.barh(y, med, color=[color[r["runtime"]] for r in rows], height=0.62,
                xerr=[[0.0] * len(rows), up], error_kw={"ecolor": "#374151", "capsize": 3, "linewidth": 0.8})
        ax.set_yticks(y, [_short(r["label"], 52) for r in rows])
        top = max(max(m + u for m, u in zip(med, up)), 1e-6)
        for yi, m, u in zip(y, med, up):
            ax.text(m + u + top * 0.01, yi, f"{m:.3g} ms (p90 {m + u:.3g})", va="center", fontsize=8)
        ax.set_xlim(0, top * 1.3)
        ax.set_xlabel("latency per call (ms): bar = median, whisker = p90")
        ax.legend(handles=[_patch(color[rt], rt) for rt in runtimes], **ABOVE, ncols=len(runtimes))
        return fig

    return Figure("fig-latency", "Measured latency per runtime and precision", _svg(draw, rows, salt="latency"),
                  "Each row is one artifact on one runtime and thread count, timed on this host (see summary).")


def _patch(color: str, label: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(color=color, label=label)


def pareto_figure(points: list[tuple[str, float, float, str]]) -> Figure:
    """Accuracy vs measured latency per variant; the Pareto front (nothing both faster and more accurate) joined."""
    def draw(points: list[tuple[str, float, float, str]]) -> Any:
        fig, (ax,) = _new(7.4, 3.6)
        ax.grid(axis="y", color="#e5e7eb", linewidth=0.6)
        front = pareto_front([(lat, acc) for _, lat, acc, _ in points])
        for i, (name, lat, acc, how) in enumerate(points):
            on = (lat, acc) in front
            ax.scatter([lat], [acc], s=60 if on else 36, color=COLORS[i % len(COLORS)], zorder=3,
                       edgecolor="#111827" if on else "none", linewidth=0.8)
        pts = sorted(front)
        if len(pts) > 1:
            xs, ys = zip(*pts)
            ax.step(xs, ys, where="post", color="#111827", linewidth=1, linestyle="--", zorder=2,
                    label="Pareto front")
            ax.legend(loc="lower right")
        lats = [p[1] for p in points]
        accs = [p[2] for p in points]
        ax.set_xlim(0, max(lats) * 1.6)
        spread = max(max(accs) - min(accs), 0.5)
        ax.set_ylim(min(accs) - spread * 0.35, max(accs) + spread * 0.35)
        ax.set_xlabel("measured median latency (ms), fastest runtime of each variant")
        ax.set_ylabel("accuracy (%)")
        _label_points(ax, [(f"{name}: {acc:.2f}% · {lat:.3g} ms ({how})", lat, acc) for name, lat, acc, how in points])
        return fig

    return Figure("fig-pareto", "Accuracy vs measured latency", _svg(draw, points, salt="pareto"),
                  "Variants on the dashed front are Pareto-optimal: no other variant is both faster and more accurate.")


def _label_points(ax: Any, labels: list[tuple[str, float, float]]) -> None:
    """Write each point's label beside it, moved down or up in steps until it overlaps no label placed before."""
    placed: list[tuple[float, float, float, float]] = []
    scale = ax.figure.dpi / 72.0                              # offsets are in points; boxes in display pixels
    for text, x, y in sorted(labels, key=lambda t: (-t[2], t[1])):
        px, py = ax.transData.transform((x, y))
        w, h = len(text) * 4.6 * scale, 11 * scale
        for k in range(12):
            dy = 4 - 13 * ((k + 1) // 2) * (1 if k % 2 else -1) if k else 4
            box = (px + 7 * scale, py + dy * scale, px + 7 * scale + w, py + dy * scale + h)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(7, dy), fontsize=8,
                    arrowprops={"arrowstyle": "-", "color": "#9ca3af", "linewidth": 0.6} if k else None)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(latency, accuracy) points not dominated by another (lower-or-equal latency and higher-or-equal accuracy)."""
    return [p for p in points if not any(q != p and q[0] <= p[0] and q[1] >= p[1] for q in points)]


def layers_figure(layers: list[dict[str, Any]], precision: str, top: int = 12) -> Figure:
    """MACs and memory traffic of the heaviest layers (top by MACs and top by traffic), in execution order."""
    by_macs = sorted(range(len(layers)), key=lambda i: -layers[i]["macs"])[:top]
    by_traffic = sorted(range(len(layers)), key=lambda i: -layers[i]["traffic_bytes"])[:top]
    keep = sorted(set(by_macs) | set(by_traffic))
    rows = [layers[i] for i in keep]

    def draw(rows: list[dict[str, Any]]) -> Any:
        fig, (a, b) = _new(7.6, 1.0 + 0.26 * len(rows), cols=2, sharey=True)
        y = list(range(len(rows)))[::-1]
        a.barh(y, [r["macs"] / 1e6 for r in rows], color=COLORS[0], height=0.65)
        b.barh(y, [r["traffic_bytes"] / 1e3 for r in rows], color=COLORS[1], height=0.65)
        a.set_yticks(y, [f"{_short(r['name'], 28)} ({r['op']})" for r in rows])
        a.set_xlabel("MACs (millions)")
        b.set_xlabel(f"memory traffic per frame (kB, {precision})")
        a.set_title("compute", loc="left")
        b.set_title("memory traffic", loc="left")
        return fig

    return Figure("fig-layers", "Per-layer MACs and memory traffic", _svg(draw, rows, salt="layers"),
                  f"The {len(rows)} layers among the top {top} by MACs or by traffic (of {len(layers)}), in execution "
                  "order. Traffic = weights + activations read + activations written.")


def roofline_figure(check: dict[str, Any], peak_ops: float | None, bandwidth: float | None, top: int = 12) -> Figure:
    """Per-layer roofline on the target: intensity vs attainable throughput under the roof, and the slowest layers'
    compute time vs memory time (the estimate is the larger)."""
    layers = [r for r in check.get("layers", []) if r.get("latency_ms", 0) > 0]
    slow = sorted(layers, key=lambda r: -r["latency_ms"])[:top]
    roof = peak_ops is not None and bandwidth is not None

    def draw(layers: list[dict[str, Any]]) -> Any:
        fig, axes = _new(7.6, max(3.2, 1.0 + 0.24 * len(slow)), cols=2 if roof else 1)
        ax = axes[-1]
        y = list(range(len(slow)))[::-1]
        ax.barh([v + 0.18 for v in y], [r["compute_ms"] * 1e3 for r in slow], height=0.36, color=COLORS[0],
                label="compute")
        ax.barh([v - 0.18 for v in y], [r["memory_ms"] * 1e3 for r in slow], height=0.36, color=COLORS[1],
                label="memory")
        ax.set_yticks(y, [f"{_short(r['name'], 22)}" for r in slow])
        ax.set_xlabel(f"estimated time of the {len(slow)} slowest layers (µs)")
        ax.legend(**ABOVE, ncols=2)
        if roof:
            _roof(axes[0], layers, peak_ops, bandwidth)
        return fig

    n_mem = sum(r.get("bound") == "memory" for r in layers)
    return Figure("fig-roofline", f"Roofline on {check.get('target', 'the target')}",
                  _svg(draw, layers, salt="roofline"),
                  f"{n_mem} of {len(layers)} layers are memory-bound at {check.get('precision')}. Left: arithmetic "
                  "intensity vs the throughput the roofline allows (dot size = share of the estimated latency).")


def _roof(ax: Any, layers: list[dict[str, Any]], peak_ops: float, bandwidth: float) -> None:
    pts = []
    for r in layers:
        ops, traffic = r["compute_ms"] * 1e-3 * peak_ops, r["memory_ms"] * 1e-3 * bandwidth
        if ops > 0 and traffic > 0:
            pts.append((ops / traffic, ops / (r["latency_ms"] * 1e-3) / 1e9, r))
    ridge = peak_ops / bandwidth
    lo = min([p[0] for p in pts] + [ridge]) / 4
    hi = max([p[0] for p in pts] + [ridge]) * 4
    xs = [lo * (hi / lo) ** (i / 60) for i in range(61)]
    ax.plot(xs, [min(peak_ops, bandwidth * x) / 1e9 for x in xs], color="#111827", linewidth=1.2)
    ax.axvline(ridge, color="#9ca3af", linewidth=0.8, linestyle=":")
    total = sum(p[2]["latency_ms"] for p in pts) or 1.0
    for x, g, r in pts:
        ax.scatter([x], [g], s=12 + 300 * r["latency_ms"] / total, alpha=0.75, zorder=3,
                   color=COLORS[0] if r.get("bound") == "compute" else COLORS[1])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (ops/byte)")
    ax.set_ylabel("attainable GOPS")
    ax.set_title(f"roof: {peak_ops / 1e12:.3g} TOPS, {bandwidth / 1e9:.3g} GB/s", loc="left")
    ax.grid(color="#f1f5f9", linewidth=0.5)


def budget_figure(verdicts: list[dict[str, Any]], target: str) -> Figure | None:
    """Each numeric verdict as the share of its limit it uses (log scale; 1 = the limit), coloured by status."""
    rows = []
    for v in verdicts:
        m, lim = v.get("measured"), v.get("limit")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < math.inf for x in (m, lim)):
            continue
        higher_better = higher_is_better(v["name"], m, lim, v.get("passed"))
        rows.append((v["name"], lim / m if higher_better else m / lim, m, lim, v.get("unit", ""), v["status"],
                     higher_better))
    if not rows:
        return None

    def draw(rows: list[Any]) -> Any:
        fig, (ax,) = _new(7.4, 0.9 + 0.42 * len(rows))
        y = list(range(len(rows)))[::-1]
        shares = [r[1] for r in rows]
        lo, hi = min(shares + [1.0]) / 8, max(shares + [1.0]) * 8
        ax.barh(y, [s - lo for s in shares], left=lo, color=[STATUS_COLORS.get(r[5], "#94a3b8") for r in rows],
                height=0.6)
        ax.axvline(1.0, color="#111827", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.set_yticks(y, [r[0] for r in rows])
        for yi, (name, share, m, lim, unit, status, hb) in zip(y, rows):
            text = (f"{status}: {_num(m)} {unit}, needs ≥ {_num(lim)}" if hb else
                    f"{status}: {_num(m)} of {_num(lim)} {unit}")
            ax.text(share * 1.15, yi, text.strip(), va="center", fontsize=8)
        ax.set_xlabel("share of the target's limit used (log scale; right of the line = over budget)")
        return fig

    return Figure("fig-budget", f"Budget verdicts on {target}", _svg(draw, rows, salt="budget"),
                  "Lower-is-better budgets (memory, latency, bandwidth) as measured / limit; FPS as required / "
                  "achievable. Bars left of the line fit.")


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def higher_is_better(name: str, measured: float, limit: float, passed: bool | None) -> bool:
    """True for a budget that must be reached (FPS), False for one that must not be exceeded (memory, latency)."""
    if name == "fps":
        return True
    if passed is True:
        return measured > limit
    if passed is False:
        return measured < limit
    return False


def sqnr_figure(layers: list[dict[str, Any]]) -> Figure | None:
    """Per-layer SQNR after quantization (lowest first when there are many); sensitivity beside it when measured."""
    rows = [r for r in layers if r.get("sqnr_db") is not None]
    if not rows:
        return None
    shown = rows if len(rows) <= MAX_BARS else sorted(rows, key=lambda r: r["sqnr_db"])[:MAX_BARS]
    sens = any(r.get("sensitivity") is not None for r in shown)

    def draw(rows: list[dict[str, Any]]) -> Any:
        fig, axes = _new(7.4, 0.9 + 0.26 * len(rows), cols=2 if sens else 1, sharey=True)
        y = list(range(len(rows)))[::-1]
        worst = min(r["sqnr_db"] for r in rows)
        axes[0].barh(y, [r["sqnr_db"] for r in rows], height=0.62,
                     color=[COLORS[1] if r["sqnr_db"] == worst else COLORS[0] for r in rows])
        axes[0].set_yticks(y, [f"{_short(r.get('module') or r['name'], 28)} ({r['op']}, {r['precision']})"
                               for r in rows])
        axes[0].set_xlabel("SQNR of the layer's output (dB, higher = closer to float)")
        if sens:
            axes[1].barh(y, [r.get("sensitivity") or 0.0 for r in rows], height=0.62, color=COLORS[3])
            axes[1].set_xlabel("sensitivity (accuracy points lost when only this layer is quantized)")
        return fig

    extra = "" if len(shown) == len(rows) else f" The {MAX_BARS} lowest of {len(rows)} layers."
    return Figure("fig-sqnr", "Per-layer quantization error", _svg(draw, shown, salt="sqnr"),
                  "Signal-to-quantization-noise ratio of each quantized layer's output vs float on calibration "
                  f"data; the lowest is highlighted.{extra}")


def channels_figure(layers: list[dict[str, Any]]) -> Figure | None:
    """Output channels (or non-zero weights) before and after pruning, per layer, with the share kept."""
    rows = [r for r in layers if r.get("unit") in ("channels", "weights") and r.get("before") and r["before"][0]]
    if not rows:
        return None
    shown = rows if len(rows) <= MAX_BARS else sorted(rows, key=lambda r: r["after"][0] / r["before"][0])[:MAX_BARS]

    def draw(rows: list[dict[str, Any]]) -> Any:
        fig, (ax,) = _new(7.4, 0.9 + 0.3 * len(rows))
        y = list(range(len(rows)))[::-1]
        ax.barh(y, [r["before"][0] for r in rows], color="#e2e8f0", height=0.7, label="before")
        ax.barh(y, [r["after"][0] for r in rows], color=COLORS[0], height=0.7, label="kept")
        ax.set_yticks(y, [f"{_short(r['name'], 28)} ({r['kind']})" for r in rows])
        for yi, r in zip(y, rows):
            ax.text(r["before"][0], yi, f" {r['after'][0]:,}/{r['before'][0]:,} ({100 * r['after'][0] / r['before'][0]:.0f}%)",
                    va="center", fontsize=8)
        ax.set_xlim(0, max(r["before"][0] for r in rows) * 1.3)
        unit = "non-zero weights" if all(r["unit"] == "weights" for r in rows) else "output channels"
        ax.set_xlabel(unit)
        ax.legend(**ABOVE, ncols=2)
        return fig

    extra = "" if len(shown) == len(rows) else f" The {MAX_BARS} most pruned of {len(rows)} layers."
    return Figure("fig-channels", "Channels kept per layer after pruning", _svg(draw, shown, salt="channels"),
                  f"Grey: before pruning; blue: kept.{extra}")


EVAL_KEYS = ("eval", "accuracy", "acc", "top1", "val_acc", "val_top1")
X_KEYS = ("epoch", "step")                # a history's x axis (training loops log per epoch or per step)


def curves_figure(histories: list[tuple[str, list[dict[str, Any]]]], title: str = "Training curves") -> Figure | None:
    """Loss curves per epoch of training / distillation steps (non-zero loss terms), accuracy on a 2nd axis."""
    histories = [(t, h) for t, h in histories if h][:3]
    if not histories:
        return None

    def draw(histories: list[tuple[str, list[dict[str, Any]]]]) -> Any:
        from matplotlib.ticker import MaxNLocator

        fig, axes = _new(7.6, 3.2, cols=len(histories))
        for ax, (title, hist) in zip(axes, histories):
            ax.grid(axis="y", color="#e5e7eb", linewidth=0.6)
            axis = next((k for k in X_KEYS if _numeric_series(hist, k)), None)
            xs = [h.get(axis, i + 1) if axis else i + 1 for i, h in enumerate(hist)]
            keys = [k for k in dict.fromkeys(k for h in hist for k in h)
                    if k not in X_KEYS and k not in EVAL_KEYS and _numeric_series(hist, k)]
            for i, k in enumerate(keys):
                ax.plot(xs, [h.get(k) for h in hist], marker="o", markersize=3, color=COLORS[i % len(COLORS)],
                        label=k, linewidth=1.3 if k == "loss" else 1)
            ax.set_xlabel(axis or "epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("loss")
            ax.set_title(title, loc="left")
            evals = [k for k in EVAL_KEYS if _numeric_series(hist, k)]
            if evals:
                tw = ax.twinx()
                tw.plot(xs, [h.get(evals[0]) for h in hist], color="#111827", linestyle="--", marker="s",
                        markersize=3, label=f"{evals[0]} (right)")
                tw.set_ylabel(f"{evals[0]} (%)")
                tw.spines[["top"]].set_visible(False)
                lines = ax.get_legend_handles_labels()
                more = tw.get_legend_handles_labels()
                ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper center", bbox_to_anchor=(0.5, -0.2),
                          ncols=min(len(lines[0]) + 1, 5))
            elif keys:
                ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=min(len(keys), 5))
        return fig

    evals = any(_numeric_series(h, k) for _, h in histories for k in EVAL_KEYS)
    return Figure("fig-curves", title, _svg(draw, histories, salt="curves"),
                  "Mean loss terms per epoch or step (terms that stayed zero are left out)"
                  + ("; dashed: held-out accuracy." if evals else "."))


def _numeric_series(hist: list[dict[str, Any]], key: str) -> bool:
    vals = [h.get(key) for h in hist]
    return (all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in vals)
            and any(v != 0 for v in vals))
