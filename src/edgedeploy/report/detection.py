"""Report section of a detector's ``evaluate`` step (the head/body case study): mAP per variant, the run's detector
against OpenCV's Haar cascades on the first held-out scenes, recall by distance, detection overlays on held-out
scenes and on real photos, and the tutorial's "choices impact" (MACs, memory traffic at 30 FPS and the MyriadX
latency estimate of the baseline, of each hardware-aware swap alone, and of the hardware-aware variant).

Everything drawn here was computed by the evaluate step (the task's ``extras`` and ``samples`` hooks,
``zoo.headbody.showcase``): the report only renders. An evaluate step without detection metrics is shown by the
standard renderer.
"""
from __future__ import annotations

from typing import Any

from . import figures as fg
from .html import esc, notes, num, si, table
from .rundir import RunRecord, StepRecord
from .sections import Section, evaluate_section, gallery, register_section

CLASSES = ("head", "body")


def is_detection(step: StepRecord) -> bool:
    """True when the evaluate step scored a detector (its rows carry per-class mAP and recall by distance)."""
    rows = step.data.get("metrics")
    return isinstance(rows, list) and bool(rows) and isinstance(rows[0], dict) and "map50_head" in rows[0]


@register_section("evaluate")
def detection_section(step: StepRecord, run: RunRecord) -> Section:
    """mAP table, the Haar comparison, recall-by-distance plot, overlays and the choices-impact plot."""
    if not is_detection(step):
        return evaluate_section(step, run)
    rows = step.data["metrics"]
    extras = step.data.get("extras") or {}
    n_images = int(rows[0].get("images") or 0)
    body = [(esc(r["variant"]), num(r.get("map50"), 3), num(r.get("map50_head"), 3), num(r.get("map50_body"), 3),
             num(r.get("map50_95"), 3), num(r.get("head_recall_15_20ft"), 3), num(r.get("network_ms"), 3))
            for r in rows]
    html = (f"<p>{n_images} held-out scenes (test faces only), COCO mAP (%) with pycocotools; recall at score ≥ 0.3, "
            "IoU ≥ 0.5.</p>"
            + table(("variant", "mAP@0.5", "head", "body", "mAP@[.5:.95]", "head recall 15-20 ft", "ms/frame"), body,
                    numeric=(1, 2, 3, 4, 5, 6)))
    haar = extras.get("haar")
    missing = [what for what, key in (("the Haar comparison", "haar"), ("the choices impact", "choices"))
               if not extras.get(key)]
    if haar:
        html += haar_html(haar, f"{run.model} ({step.variant or rows[0]['variant']})")
    shots = gallery(step)
    if shots:
        html += ("<h4>Detections</h4><p class=\"muted\">Held-out scenes (labelled boxes in gray) and real photos "
                 "(scikit-image's astronaut and camera, matplotlib's Grace Hopper) letterboxed into the camera frame; "
                 f"head red, body green, score ≥ 0.3.</p>{shots}")
    figures = [recall_figure({**rows[0], "variant": f"{run.model} ({rows[0]['variant']})"}, haar)]
    if extras.get("choices"):
        figures.append(choices_figure(extras["choices"]))
    warnings = [f"{', '.join(missing)}: not in this evaluate step's results (re-run the step)"] if missing else []
    return Section(html + notes(warnings), figures)


def haar_html(haar: dict[str, Any], name: str) -> str:
    """The detector and the Haar cascades side by side on the same first held-out scenes."""
    net, ref = haar["model"], haar["haar"]
    body = [(esc(label), num(r["map50_head"], 3), num(r["map50_body"], 3), num(r["head_recall_15_20ft"], 3),
             num(r["ms"], 3)) for label, r in ((name, net), ("OpenCV Haar cascades (reference)", ref))]
    return (f"<h4>Against the outside reference, on the first {haar['scenes']} held-out scenes</h4>"
            + table(("detector", "head mAP@0.5", "body mAP@0.5", "head recall 15-20 ft", "ms/frame"), body,
                    numeric=(1, 2, 3, 4))
            + f'<p class="muted">head mAP@0.5: {num(net["map50_head"], 3)} vs {num(ref["map50_head"], 3)} '
              f'({net["map50_head"] - ref["map50_head"]:+.1f} points; the case study asks ≥ +20).</p>')


def recall_figure(row: dict[str, Any], haar: dict[str, Any] | None) -> fg.Figure:
    """Recall by distance bin, heads and bodies, of the evaluated detector (and of the Haar cascades)."""
    def draw(row: dict[str, Any], haar: dict[str, Any] | None) -> Any:
        fig, axes = fg._new(7.6, 3.1, cols=2, sharey=True)
        for ax, cls in zip(axes, CLASSES):
            series = [(row["variant"], row["recall_by_distance"][cls], fg.COLORS[0])]
            if haar:
                series.append((f"Haar cascades (first {haar['scenes']} scenes)",
                               haar["haar"]["recall_by_distance"][cls], fg.COLORS[1]))
            bins = list(series[0][1])
            width = 0.8 / len(series)
            for k, (label, rec, color) in enumerate(series):
                xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(bins))]
                ax.bar(xs, [rec[b] if rec[b] == rec[b] else 0 for b in bins], width=width * 0.95, color=color,
                       label=label)
            counts = row.get("counts_by_distance", {}).get(cls, {})
            ax.set_xticks(range(len(bins)), [f"{b}\n(n={counts.get(b, '?')})" for b in bins], fontsize=7.5)
            ax.set_ylim(0, 105)
            ax.grid(axis="y", color="#e5e7eb", linewidth=0.6)
            ax.set_title({"head": "heads", "body": "bodies"}.get(cls, cls), loc="left")
        axes[0].set_ylabel("recall (%)")
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
        return fig

    return fg.Figure("fig-recall-distance", "Recall by distance from the camera",
                     fg._svg(draw, row, haar, salt="recall-distance"),
                     "Share of labelled heads and bodies found (score ≥ 0.3, IoU ≥ 0.5) per distance bin: far "
                     "heads are a few pixels, so recall falls with distance.")


def choices_figure(rows: list[dict[str, Any]]) -> fg.Figure:
    """The tutorial's "choices impact": each swap alone on the baseline, and the hardware-aware mix."""
    def draw(rows: list[dict[str, Any]]) -> Any:
        fig, axes = fg._new(7.6, 0.9 + 0.3 * len(rows), cols=3, sharey=True)
        y = list(range(len(rows)))[::-1]
        colors = [fg.COLORS[0] if r["name"] == "baseline" else fg.COLORS[2] if r["name"] == "hw-aware"
                  else fg.COLORS[7] for r in rows]
        for ax, key, scale, label in ((axes[0], "macs", 1e6, "MACs (M)"),
                                      (axes[1], "traffic_bytes", 1e9 / 30, "traffic at 30 FPS (GB/s)"),
                                      (axes[2], "myriadx_ms", 1.0, "MyriadX estimate (ms)")):
            vals = [r[key] / scale for r in rows]
            ax.barh(y, vals, color=colors, height=0.62)
            for yi, v in zip(y, vals):
                ax.text(v, yi, f" {v:.0f}" if v >= 100 else f" {v:.3g}", va="center", fontsize=7.5)
            ax.set_xlim(0, max(vals) * 1.35)
            ax.set_xlabel(label)
        axes[0].set_yticks(y, [r["name"] for r in rows])
        return fig

    return fg.Figure("fig-choices", "Choices impact: baseline vs each hardware-aware swap",
                     fg._svg(draw, rows, salt="choices"),
                     "Each row swaps one choice into the baseline (untrained: costs do not depend on weights), "
                     "FP16 at 1x352x1280; traffic = weights + activations moved per frame x 30 FPS; latency = the "
                     "MyriadX target's calibrated roofline estimate. "
                     + "; ".join(f"{r['name']}: {si(r['macs'])} MACs, {si(r['params'])} params" for r in
                                 (rows[0], rows[-1])))

