"""Detection accuracy on held-out scenes: COCO mAP (pycocotools, cross-checked by faster-coco-eval) and recall by
distance from the camera.

mAP@0.5 and mAP@[.5:.95] come from the reference implementation (pycocotools' COCOeval, bbox, maxDets 100) per class
and averaged over head and body; ``crowd`` boxes are COCO iscrowd regions (detections on them are ignored).
Recall by distance: at one operating point (score >= ``recall_score``), the fraction of labelled heads/bodies in each
distance bin matched by a detection of their class at IoU >= 0.5 (greedy, best score first, as COCO matches).
"""
from __future__ import annotations

import contextlib
import copy
import io
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ...errors import ConfigError
from .coco import detections_to_coco, to_coco
from .data import CATEGORIES, DISTANCE_BINS_FT, DetectionSet
from .postprocess import DecodeConfig, Detections, decode

BACKENDS = ("pycocotools", "faster-coco-eval")


@dataclass(frozen=True)
class EvalConfig:
    """COCO backend, decode settings, the recall operating point and distance bins (feet), batch size."""

    backend: str = "pycocotools"
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    recall_score: float = 0.3
    recall_iou: float = 0.5
    distance_bins: tuple[tuple[float, float], ...] = DISTANCE_BINS_FT
    batch_size: int = 4

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown COCO backend {self.backend!r}; choose one of {list(BACKENDS)}")
        if not 0 <= self.recall_score < 1 or not 0 < self.recall_iou <= 1:
            raise ConfigError(f"recall_score must be in [0, 1) and recall_iou in (0, 1] "
                              f"(got {self.recall_score}, {self.recall_iou})")
        if any(lo >= hi for lo, hi in self.distance_bins):
            raise ConfigError(f"distance bins must be (low, high) with low < high (got {self.distance_bins})")


@dataclass
class DetectionEval:
    """mAPs in percent (overall and per class), recall (%) by class and distance bin with counts, timing."""

    map50: float
    map50_95: float
    per_class: dict[str, dict[str, float]]
    recall_by_distance: dict[str, dict[str, float]]
    counts_by_distance: dict[str, dict[str, int]]
    images: int
    backend: str
    timing_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def row(self) -> dict[str, Any]:
        """The flat metrics a recipe's evaluate step records (percent and ms, 2 decimals): mAP@0.5 overall and per
        class, mAP@[.5:.95], head recall at 15-20 ft, network ms/frame, and recall / counts by distance bin."""
        out = {"map50": round(self.map50, 2), "map50_95": round(self.map50_95, 2)}
        for name, m in self.per_class.items():
            out[f"map50_{name}"] = round(m["map50"], 2)
        out["head_recall_15_20ft"] = round(self.recall_by_distance["head"].get("15-20 ft", float("nan")), 2)
        out["network_ms"] = round(self.timing_ms.get("network_ms", float("nan")), 2)
        out["images"] = self.images
        out["recall_by_distance"] = {c: {b: round(v, 2) for b, v in r.items()}
                                     for c, r in self.recall_by_distance.items()}
        out["counts_by_distance"] = self.counts_by_distance
        return out

    def __str__(self) -> str:
        from .data import render_text

        return render_text(self)

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"head/body detection on {self.images} images ({self.backend})")
        bins = list(next(iter(self.recall_by_distance.values())).keys()) if self.recall_by_distance else []
        for col in ["class", "mAP@0.5", "mAP@[.5:.95]", *[f"recall {b}" for b in bins]]:
            t.add_column(col, justify="right")
        for name, m in self.per_class.items():
            rec = self.recall_by_distance.get(name, {})
            cnt = self.counts_by_distance.get(name, {})
            t.add_row(name, f"{m['map50']:.1f}", f"{m['map50_95']:.1f}",
                      *[f"{rec[b]:.1f} (n={cnt[b]})" if cnt.get(b) else "-" for b in bins])
        t.add_row("all", f"{self.map50:.1f}", f"{self.map50_95:.1f}")
        return t


def coco_map(eval_data: DetectionSet, detections: list[Detections], backend: str = "pycocotools") -> dict[str, Any]:
    """mAP@0.5 and mAP@[.5:.95] (percent), overall and per class, with the named COCO implementation."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown COCO backend {backend!r}; choose one of {list(BACKENDS)}")
    if len(detections) != len(eval_data):
        raise ConfigError(f"{len(detections)} detection lists for {len(eval_data)} images; pass one per image")
    gt = to_coco(eval_data)
    results = detections_to_coco(detections)
    out: dict[str, Any] = {"per_class": {}}
    for cat in [None] + [c["id"] for c in gt["categories"]]:
        stats = _run_cocoeval(gt, results, backend, cat)
        key = "all" if cat is None else CATEGORIES[cat - 1]
        # COCO reports -1 when a class has no labelled box: undefined, shown as NaN
        out["per_class"][key] = {"map50": 100 * stats[1] if stats[1] >= 0 else float("nan"),
                                 "map50_95": 100 * stats[0] if stats[0] >= 0 else float("nan")}
    overall = out["per_class"].pop("all")
    out.update(overall)
    return out


def _run_cocoeval(gt: dict[str, Any], results: list[dict[str, Any]], backend: str, cat: int | None) -> list[float]:
    if not results:                            # no detections at all: every AP is 0
        return [0.0] * 12
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        if backend == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            coco_gt = COCO()
            coco_gt.dataset = copy.deepcopy(gt)
            coco_gt.createIndex()
            ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), "bbox")
        else:
            from faster_coco_eval import COCO as FCOCO
            from faster_coco_eval import COCOeval_faster

            fgt = FCOCO(copy.deepcopy(gt))
            ev = COCOeval_faster(fgt, fgt.loadRes(copy.deepcopy(results)), "bbox", print_function=lambda *a, **k: None)
        if cat is not None:
            ev.params.catIds = [cat]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(s) for s in ev.stats]


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[0] + box[2], boxes[:, 0] + boxes[:, 2])
    y1 = np.minimum(box[1] + box[3], boxes[:, 1] + boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / np.maximum(box[2] * box[3] + boxes[:, 2] * boxes[:, 3] - inter, 1e-9)


def recall_by_distance(eval_data: DetectionSet, detections: list[Detections], config: EvalConfig | None = None
                       ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]]]:
    """Recall (%) and ground-truth counts per class and distance bin at the config's operating point."""
    cfg = config or EvalConfig()
    names = [f"{lo:g}-{hi:g} ft" for lo, hi in cfg.distance_bins]
    hit = {c: {n: 0 for n in names} for c in CATEGORIES}
    total = {c: {n: 0 for n in names} for c in CATEGORIES}
    for lb, det in zip(eval_data.labels, detections):
        for k, cname in enumerate(CATEGORIES):
            gi = np.nonzero((lb.labels == k) & ~lb.crowd)[0]
            sel = (det.labels == k) & (det.scores >= cfg.recall_score)
            boxes = det.boxes[sel][np.argsort(-det.scores[sel], kind="stable")]
            matched = np.zeros(len(gi), bool)
            for b in boxes:                       # each detection takes its best unmatched box (COCO-style)
                if not len(gi):
                    break
                ious = np.where(matched, -1.0, _iou(b, lb.boxes[gi]))
                j = int(np.argmax(ious))
                if ious[j] >= cfg.recall_iou:
                    matched[j] = True
            for j, g in enumerate(gi):
                d = float(lb.distances[g])
                for (lo, hi), n in zip(cfg.distance_bins, names):
                    if lo <= d < hi or (d == hi == cfg.distance_bins[-1][1]):
                        total[cname][n] += 1
                        hit[cname][n] += int(matched[j])
                        break
    recall = {c: {n: (100.0 * hit[c][n] / total[c][n] if total[c][n] else float("nan")) for n in names}
              for c in CATEGORIES}
    return recall, total


def predict(model: Any, eval_data: DetectionSet, config: EvalConfig | None = None) -> tuple[list[Detections], dict]:
    """Run ``model`` (a torch module, or a runtime Session with ``run``; a U8-input one gets the raw frames) over
    the frames and decode; also return the mean network and decode time per frame (ms)."""
    import torch

    cfg = config or EvalConfig()
    dets: list[Detections] = []
    net_s = dec_s = 0.0
    is_torch = isinstance(model, torch.nn.Module)
    if is_torch:
        model.eval()
    bs = cfg.batch_size if is_torch else 1
    # a deployed graph with a U8 input (the camera's frames, scaling baked in) is fed the raw frames
    raw_u8 = not is_torch and bool(getattr(model, "inputs", None)) and model.inputs[0].dtype == "uint8"
    for start in range(0, len(eval_data), bs):
        idx = range(start, min(start + bs, len(eval_data)))
        x = eval_data.tensor(idx)
        t0 = time.perf_counter()
        if is_torch:
            with torch.no_grad():
                out = model(x).numpy()
        else:
            feed = np.stack([eval_data.images[i] for i in idx])[:, None] if raw_u8 else x.numpy()
            out = model.run(feed)[0]
        t1 = time.perf_counter()
        dets += decode(out, cfg.decode, image_hw=tuple(x.shape[-2:]))
        net_s, dec_s = net_s + t1 - t0, dec_s + time.perf_counter() - t1
    n = max(len(eval_data), 1)
    return dets, {"network_ms": 1000 * net_s / n, "decode_ms": 1000 * dec_s / n}


def evaluate_detections(detections: list[Detections], eval_data: DetectionSet, config: EvalConfig | None = None,
                        timing_ms: dict[str, float] | None = None) -> DetectionEval:
    """Score given detections (one per frame, in order) against ``eval_data``."""
    cfg = config or EvalConfig()
    if len(eval_data) == 0:
        raise ConfigError("eval_data has no images")
    m = coco_map(eval_data, detections, cfg.backend)
    recall, counts = recall_by_distance(eval_data, detections, cfg)
    return DetectionEval(m["map50"], m["map50_95"], m["per_class"], recall, counts, len(eval_data), cfg.backend,
                         dict(timing_ms or {}))


def evaluate(model: Any, eval_data: DetectionSet, config: EvalConfig | None = None) -> DetectionEval:
    """Detect on ``eval_data`` with ``model`` and score it (mAPs, recall by distance, time per frame)."""
    dets, timing = predict(model, eval_data, config)
    return evaluate_detections(dets, eval_data, config, timing)
