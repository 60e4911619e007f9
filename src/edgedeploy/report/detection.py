"""Report section of a detector's ``evaluate`` step (the head/body case study): mAP per variant, the run's detector
against OpenCV's Haar cascades on the first held-out scenes, recall by distance, detection overlays on held-out
scenes and on real photos, and the tutorial's "choices impact" (MACs, memory traffic at 30 FPS and the MyriadX
latency estimate of the baseline, of each hardware-aware swap alone, and of the hardware-aware variant).

The step's result holds the numbers; what a picture needs is recomputed here, deterministically: the held-out
scenes are seeded (the first frames of the evaluated set), the overlays run the run's own exported ONNX (else its
saved model), and the choices are profiled from the architectures (costs do not depend on the weights).
An evaluate step without detection metrics is shown by the standard renderer.
"""
from __future__ import annotations

import base64
from functools import lru_cache
from typing import Any

from . import figures as fg
from .html import esc, notes, num, si, table
from .rundir import RunRecord, StepRecord
from .sections import Section, evaluate_section, register_section

OVERLAY_SCENES = 3
HAAR_SCENES = 8
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
    shape = _input_hw(run)
    n_images = int(rows[0].get("images") or 0)
    body = [(esc(r["variant"]), num(r.get("map50"), 3), num(r.get("map50_head"), 3), num(r.get("map50_body"), 3),
             num(r.get("map50_95"), 3), num(r.get("head_recall_15_20ft"), 3), num(r.get("network_ms"), 3))
            for r in rows]
    html = (f"<p>{n_images} held-out scenes (test faces only), COCO mAP (%) with pycocotools; recall at score ≥ 0.3, "
            "IoU ≥ 0.5.</p>"
            + table(("variant", "mAP@0.5", "head", "body", "mAP@[.5:.95]", "head recall 15-20 ft", "ms/frame"), body,
                    numeric=(1, 2, 3, 4, 5, 6)))
    warnings: list[str] = []
    haar = None
    try:
        model, source = _detector(run)
        if shape is not None:
            haar = haar_comparison(model, source, min(HAAR_SCENES, n_images or HAAR_SCENES), *shape)
            html += haar["html"]
            html += overlays_html(model, source, shape)
    except Exception as exc:  # noqa: BLE001 - a picture that cannot be made must not cost the report
        warnings.append(f"Haar comparison and overlays not made ({type(exc).__name__}: {exc})")
    figures = [recall_figure({**rows[0], "variant": f"{run.model} ({rows[0]['variant']})"}, haar)]
    try:
        if shape is not None:
            figures.append(choices_figure(_choices(*shape)))
    except Exception as exc:  # noqa: BLE001
        warnings.append(f"choices impact not computed ({type(exc).__name__}: {exc})")
    return Section(html + notes(warnings), figures)


def _input_hw(run: RunRecord) -> tuple[int, int] | None:
    from ..shapes import parse_shape

    text = (run.recipe or {}).get("input")
    if not text:
        return None
    shape = parse_shape(text) if isinstance(text, str) else tuple(text)
    return int(shape[-2]), int(shape[-1])


@lru_cache(maxsize=2)
def _test_scenes(n: int, height: int, width: int) -> Any:
    """The first ``n`` held-out scenes of the evaluate step (scene i is seeded by its index: same pixels)."""
    from ..zoo.headbody.scenes import SceneConfig, generate_scenes
    from ..zoo.headbody.weights import TEST_SCENE_SEED

    return generate_scenes(n, SceneConfig(height=height, width=width, faces="test"), seed=TEST_SCENE_SEED,
                           progress=False)


def _scores(ev: Any) -> dict[str, Any]:
    return {"map50": ev.map50, "map50_95": ev.map50_95, "map50_head": ev.per_class["head"]["map50"],
            "map50_body": ev.per_class["body"]["map50"],
            "head_recall_15_20ft": ev.recall_by_distance["head"].get("15-20 ft"),
            "recall_by_distance": ev.recall_by_distance}


def haar_comparison(model: Any, source: str, n: int, height: int, width: int) -> dict[str, Any]:
    """The run's detector and OpenCV's Haar cascades (frontal face -> head, upper body -> body) scored on the same
    first ``n`` held-out scenes (the cascades take about 2 s a frame, so not on all of them)."""
    from ..zoo.headbody import HaarConfig, evaluate, evaluate_detections, haar_detect

    scenes = _test_scenes(n, height, width)
    dets, timing = haar_detect(scenes, HaarConfig())
    ref = {**_scores(evaluate_detections(dets, scenes)), "ms": timing.get("haar_ms"), "n": n}
    ev = evaluate(model, scenes)
    net = {**_scores(ev), "ms": ev.timing_ms.get("network_ms")}
    body = [(esc(name), num(r["map50_head"], 3), num(r["map50_body"], 3), num(r["head_recall_15_20ft"], 3),
             num(r["ms"], 3)) for name, r in ((source, net), ("OpenCV Haar cascades (reference)", ref))]
    html = (f"<h4>Against the outside reference, on the first {n} held-out scenes</h4>"
            + table(("detector", "head mAP@0.5", "body mAP@0.5", "head recall 15-20 ft", "ms/frame"), body,
                    numeric=(1, 2, 3, 4))
            + f'<p class="muted">head mAP@0.5: {num(net["map50_head"], 3)} vs {num(ref["map50_head"], 3)} '
              f'({net["map50_head"] - ref["map50_head"]:+.1f} points; the case study asks ≥ +20).</p>')
    return {**ref, "html": html}


def recall_figure(row: dict[str, Any], haar: dict[str, Any] | None) -> fg.Figure:
    """Recall by distance bin, heads and bodies, of the evaluated detector (and of the Haar cascades)."""
    def draw(row: dict[str, Any], haar: dict[str, Any] | None) -> Any:
        fig, axes = fg._new(7.6, 3.1, cols=2, sharey=True)
        for ax, cls in zip(axes, CLASSES):
            series = [(row["variant"], row["recall_by_distance"][cls], fg.COLORS[0])]
            if haar is not None:
                series.append((f"Haar cascades (first {haar['n']} scenes)", haar["recall_by_distance"][cls],
                               fg.COLORS[1]))
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


def _detector(run: RunRecord) -> tuple[Any, str]:
    """The run's detector: its exported ONNX on ONNX Runtime when there is one, else the last saved model.pt."""
    for step in reversed(run.of_kind("export")):
        for r in step.data.get("results") or []:
            found = step.find(r.get("path", "")) if r.get("format") == "onnx" else None
            if found is not None:
                from ..runtime import load

                return load(found, runtime="onnxruntime", threads=1), f"{found.name} (ONNX Runtime)"
    for step in reversed(run.steps):
        if "model.pt" in step.artifacts and (step.folder / "model.pt").is_file():
            from ..modelref import load_model

            return load_model(str(step.folder / "model.pt")), f"{step.name}/model.pt (torch)"
    raise FileNotFoundError("the run holds no exported ONNX and no model.pt")


def overlays_html(model: Any, source: str, shape: tuple[int, int]) -> str:
    """Detections (head red, body green; labelled boxes gray) on held-out scenes and on real photos, as JPEGs."""
    import cv2
    import numpy as np

    from ..zoo.headbody import detection_overlays

    pngs = detection_overlays(model, _test_scenes(OVERLAY_SCENES, *shape), n_scenes=OVERLAY_SCENES)
    imgs = []
    for name, png in pngs.items():
        ok, jpg = cv2.imencode(".jpg", cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR),
                               [cv2.IMWRITE_JPEG_QUALITY, 85])
        data = base64.b64encode(jpg.tobytes() if ok else png).decode()
        mime = "jpeg" if ok else "png"
        imgs.append(f'<figure style="margin:0.4em 0"><img alt="{esc(name)}" style="max-width:100%" '
                    f'src="data:image/{mime};base64,{data}">'
                    f'<figcaption class="muted">{esc(name)}</figcaption></figure>')
    return (f"<h4>Detections of {esc(source)}</h4><p class=\"muted\">Held-out scenes (labelled boxes in gray) and "
            "real photos (scikit-image's astronaut and camera, matplotlib's Grace Hopper) letterboxed into the "
            f"camera frame; head red, body green, score ≥ 0.3.</p>{''.join(imgs)}")


@lru_cache(maxsize=2)
def _choices(height: int, width: int) -> list[dict[str, Any]]:
    """MACs, params, traffic per frame at FP16 and the MyriadX latency estimate of each architecture choice."""
    import torch

    from ..metrics.profile import profile
    from ..targets.latency import estimate_latency
    from ..zoo.headbody.model import SWAPS, HeadBodyConfig, HeadBodyNet

    shape = (1, 1, height, width)
    configs = [("baseline", HeadBodyConfig.variant("baseline"))]
    configs += [(name, HeadBodyConfig.variant("baseline", **swap)) for name, swap in SWAPS.items()]
    configs.append(("hw-aware", HeadBodyConfig.variant("hw-aware")))
    out = []
    for name, cfg in configs:
        torch.manual_seed(0)
        model = HeadBodyNet(cfg).eval()
        prof = profile(model, shape, precision="fp16", fps=30)
        est = estimate_latency(prof, "myriadx", precision="fp16")
        out.append({"name": name, "macs": prof.macs, "params": prof.params, "traffic_bytes": prof.traffic_bytes,
                    "myriadx_ms": est.ms})
    return out


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

