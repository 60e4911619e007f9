"""Detection overlays for the report: boxes and scores drawn on a frame, returned as PNG bytes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ConfigError, ShapeError
from .data import CATEGORIES, DetectionSet, ImageLabels
from .postprocess import Detections

COLORS = {0: (40, 40, 230), 1: (40, 200, 40)}       # BGR: head red, body green
TRUTH = (200, 200, 200)


@dataclass(frozen=True)
class OverlayConfig:
    """Score threshold of the boxes drawn, whether to write scores, line width and output scale."""

    score_threshold: float = 0.3
    show_scores: bool = True
    thickness: int = 1
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.score_threshold < 1 or self.thickness < 1 or not 0.1 <= self.scale <= 4:
            raise ConfigError(f"OverlayConfig: need 0 <= score_threshold < 1, thickness >= 1, 0.1 <= scale <= 4 "
                              f"(got {self.score_threshold}, {self.thickness}, {self.scale})")


def draw_detections(image: np.ndarray, detections: Detections, truth: ImageLabels | None = None,
                    config: OverlayConfig | None = None) -> bytes:
    """PNG bytes of ``image`` (uint8 gray or BGR) with detections (head red, body green) and, if given, the
    labelled boxes in light gray underneath (dashed look: thin)."""
    import cv2

    cfg = config or OverlayConfig()
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ShapeError(f"draw_detections needs a uint8 H x W (or H x W x 3) image, got {image.dtype} {image.shape}")
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    s = cfg.scale
    if s != 1.0:
        canvas = cv2.resize(canvas, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    if truth is not None:
        for box, crowd in zip(truth.boxes, truth.crowd):
            x, y, w, h = (box * s).round().astype(int)
            cv2.rectangle(canvas, (x, y), (x + w, y + h), (120, 120, 120) if crowd else TRUTH, 1)
    keep = detections.scores >= cfg.score_threshold
    for box, score, cls in sorted(zip(detections.boxes[keep], detections.scores[keep], detections.labels[keep]),
                                  key=lambda t: t[1]):
        x, y, w, h = (box * s).round().astype(int)
        color = COLORS[int(cls)]
        cv2.rectangle(canvas, (x, y), (x + w, y + h), color, cfg.thickness)
        if cfg.show_scores:
            text = f"{CATEGORIES[int(cls)]} {score:.2f}"
            cv2.putText(canvas, text, (x, max(y - 3, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.33, color, 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", canvas)
    if not ok:
        raise ShapeError("could not encode the overlay as PNG")
    return buf.tobytes()


def detection_overlays(model: Any, eval_data: DetectionSet | None = None, n_scenes: int = 3, portraits: bool = True,
                       config: OverlayConfig | None = None) -> dict[str, bytes]:
    """PNG overlays for the report: the first ``n_scenes`` frames of ``eval_data`` (with their labels in gray) and
    the bundled portraits of real people (astronaut, Grace Hopper, the cameraman, a 3-up gallery), keyed by name."""
    from .assets import portrait_frames
    from .evaluate import predict

    out: dict[str, bytes] = {}
    if eval_data is not None and n_scenes > 0:
        sub = eval_data.subset(range(min(n_scenes, len(eval_data))))
        dets, _ = predict(model, sub)
        for name, img, lb, det in zip(sub.file_names, sub.images, sub.labels, dets):
            out[name] = draw_detections(img, det, lb, config)
    if portraits:
        frames = portrait_frames()
        photos = DetectionSet(list(frames.values()), [ImageLabels.empty()] * len(frames), list(frames))
        dets, _ = predict(model, photos)
        for name, img, det in zip(photos.file_names, photos.images, dets):
            out[f"photo_{name}.png"] = draw_detections(img, det, None, config)
    return out
