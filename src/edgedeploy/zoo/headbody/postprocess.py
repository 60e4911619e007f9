"""Host-side decoding of the detector's output map into boxes: heat-map peaks, box sizes, offsets, then NMS.

Pure numpy (no torch), so the same function decodes ONNX Runtime / OpenVINO / DepthAI outputs on a camera host.
Peaks are cells equal to the max of their 3x3 neighbourhood (CenterNet's max-pool "NMS"); each peak's box is its
cell centre minus/plus the exp of the regressed log distances to the left/top and right/bottom edges (in cells);
a per-class greedy IoU NMS then removes the duplicates a large body can still produce.
This file is also copied verbatim next to the DepthAI host script (``oak.py``), which imports it when edgedeploy
is not installed on the camera host; there it needs only numpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    from ...errors import ConfigError, ShapeError
except ImportError:     # a verbatim copy beside a DepthAI host script (detect_on_oak.py): numpy only, no edgedeploy
    ConfigError = ShapeError = ValueError        # type: ignore[misc, assignment]

CATEGORIES = ("head", "body")          # label 0 = head, 1 = body (the one definition; data.py re-exports it)

NUM_CLASSES = len(CATEGORIES)


@dataclass(frozen=True)
class DecodeConfig:
    """Score threshold, detections kept per image, NMS IoU (None = peaks only) and the output stride."""

    score_threshold: float = 0.05
    max_detections: int = 100
    nms_iou: float | None = 0.6
    stride: int = 4

    def __post_init__(self) -> None:
        if not 0 <= self.score_threshold < 1:
            raise ConfigError(f"score_threshold must be in [0, 1) (got {self.score_threshold})")
        if self.max_detections < 1 or self.stride < 1:
            raise ConfigError(f"max_detections and stride must be >= 1 (got {self.max_detections}, {self.stride})")
        if self.nms_iou is not None and not 0 < self.nms_iou <= 1:
            raise ConfigError(f"nms_iou must be in (0, 1] or None (got {self.nms_iou})")


@dataclass(frozen=True)
class Detections:
    """Boxes of one image: (k, 4) x, y, w, h pixels, scores (k,), labels (k,) 0 head / 1 body; best first."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready list of detections."""
        rows = zip(self.boxes, self.scores, self.labels)
        return {"detections": [{"box": [round(float(v), 2) for v in b], "score": round(float(s), 4),
                                "category": CATEGORIES[int(c)]} for b, s, c in rows]}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def _peaks(heat: np.ndarray) -> np.ndarray:
    """Boolean map of cells that equal the max of their 3x3 neighbourhood (C, h, w)."""
    _, h, w = heat.shape
    pad = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    best = heat.copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            np.maximum(best, pad[:, dy:dy + h, dx:dx + w], out=best)
    return heat >= best


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression of xywh ``boxes`` at ``iou`` (highest score first)."""
    order = np.argsort(-scores, kind="stable")
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        ih = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = iw * ih
        order = rest[inter / np.maximum(area[i] + area[rest] - inter, 1e-9) <= iou]
    return np.array(keep, dtype=np.int64)


def decode(output: Any, config: DecodeConfig | None = None,
           image_hw: tuple[int, int] | None = None) -> list[Detections]:
    """Decode raw network output (N, 6, h, w) (numpy or torch) into one ``Detections`` per image."""
    cfg = config or DecodeConfig()
    out = output.detach().cpu().numpy() if hasattr(output, "detach") else np.asarray(output)
    if out.ndim == 3:
        out = out[None]
    if out.ndim != 4 or out.shape[1] != NUM_CLASSES + 4:
        raise ShapeError(f"decode expects the detector's (N, {NUM_CLASSES + 4}, h, w) output, got {out.shape}")
    out = out.astype(np.float32, copy=False)
    n, _, h, w = out.shape
    ih, iw = image_hw or (h * cfg.stride, w * cfg.stride)
    results = []
    for b in range(n):
        heat = _sigmoid(out[b, :NUM_CLASSES])
        cand = _peaks(heat) & (heat >= cfg.score_threshold)
        cls, ys, xs = np.nonzero(cand)
        scores = heat[cls, ys, xs]
        top = np.argsort(-scores, kind="stable")[: cfg.max_detections * 2]
        cls, ys, xs, scores = cls[top], ys[top], xs[top], scores[top]
        ltrb = np.exp(np.clip(out[b, NUM_CLASSES:NUM_CLASSES + 4][:, ys, xs], -4, 6)) * cfg.stride
        px, py = (xs + 0.5) * cfg.stride, (ys + 0.5) * cfg.stride
        x0, y0 = np.clip(px - ltrb[0], 0, iw), np.clip(py - ltrb[1], 0, ih)
        x1, y1 = np.clip(px + ltrb[2], 0, iw), np.clip(py + ltrb[3], 0, ih)
        boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1).astype(np.float32)
        if cfg.nms_iou is not None and len(scores):
            keep = np.concatenate([np.nonzero(cls == c)[0][nms(boxes[cls == c], scores[cls == c], cfg.nms_iou)]
                                   for c in range(NUM_CLASSES)])
            keep = keep[np.argsort(-scores[keep], kind="stable")]
        else:
            keep = np.arange(len(scores))
        keep = keep[: cfg.max_detections]
        results.append(Detections(boxes[keep], scores[keep].astype(np.float32), cls[keep].astype(np.int64)))
    return results
