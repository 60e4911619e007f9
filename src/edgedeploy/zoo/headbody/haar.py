"""The outside reference: OpenCV's Haar cascades (Viola-Jones) on the same frames as the detector.

The frontal-face cascade finds faces and the upper-body cascade head-and-shoulders; neither box is a head or a
(visible) body box, so each is mapped by a fixed affine correction (centre shift and scale, relative to the box)
fitted on the *training* scenes by :func:`calibrate_haar` (median over Haar boxes matched to a labelled box) — the
fairest mapping we can give the cascades without touching test data. Scores are the cascades' level weights
(``detectMultiScale3``), so COCO AP can rank them. ``upscale`` enlarges the frame first: the cascades' smallest
window is 24 px (face) / 22x18 px (upper body), and far heads are smaller than that.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ...errors import ConfigError, ToolchainError
from .data import DetectionSet
from .postprocess import Detections

CASCADES = {0: "haarcascade_frontalface_default.xml", 1: "haarcascade_upperbody.xml"}


@dataclass(frozen=True)
class HaarConfig:
    """Cascade search parameters and the box corrections (dx, dy, sw, sh): the head/body box is centred at
    (cx + dx*w, cy + dy*h) of the cascade's box and sized (sw*w, sh*h)."""

    upscale: float = 2.0
    scale_factor: float = 1.1
    min_neighbors: int = 3
    # fitted by calibrate_haar on 60 training scenes (generate_scenes(60, seed=0)) at upscale 2
    face_to_head: tuple[float, float, float, float] = (0.06, -0.014, 1.12, 1.45)
    upper_to_body: tuple[float, float, float, float] = (0.028, 0.355, 0.571, 1.248)
    bodies: bool = True

    def __post_init__(self) -> None:
        if not 0.5 <= self.upscale <= 4:
            raise ConfigError(f"HaarConfig.upscale must be in [0.5, 4] (got {self.upscale})")
        if not self.scale_factor > 1.0 or self.min_neighbors < 0:
            raise ConfigError(f"scale_factor must be > 1 and min_neighbors >= 0 (got {self.scale_factor}, "
                              f"{self.min_neighbors})")
        for name in ("face_to_head", "upper_to_body"):
            v = tuple(float(x) for x in getattr(self, name))
            if len(v) != 4 or v[2] <= 0 or v[3] <= 0:
                raise ConfigError(f"HaarConfig.{name} must be (dx, dy, sw, sh) with sw, sh > 0 (got {v})")
            object.__setattr__(self, name, v)


def _cascades(bodies: bool) -> dict[int, Any]:
    try:
        import cv2
    except ImportError as exc:
        raise ToolchainError("the Haar baseline needs OpenCV with its cascades: "
                             "pip install 'opencv-python-headless<5'") from exc
    root = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if root is None or not hasattr(cv2, "CascadeClassifier"):
        raise ToolchainError(f"OpenCV {cv2.__version__} ships no Haar cascades (version 5 dropped them); "
                             "pip install 'opencv-python-headless<5'")
    out = {}
    for cls, fname in CASCADES.items():
        if cls == 1 and not bodies:
            continue
        c = cv2.CascadeClassifier(root + fname)
        if c.empty():
            raise ToolchainError(f"cannot load the OpenCV cascade {root + fname}; reinstall opencv-python-headless<5")
        out[cls] = c
    return out


def _raw(image: np.ndarray, cascades: dict[int, Any], cfg: HaarConfig) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Cascade boxes (in frame pixels) and weights per class, before the box correction."""
    import cv2

    img = image if cfg.upscale == 1 else cv2.resize(image, None, fx=cfg.upscale, fy=cfg.upscale,
                                                    interpolation=cv2.INTER_LINEAR)
    out = []
    for cls, cascade in cascades.items():
        boxes, _, weights = cascade.detectMultiScale3(img, scaleFactor=cfg.scale_factor, minNeighbors=cfg.min_neighbors,
                                                      outputRejectLevels=True)
        b = np.asarray(boxes, np.float32).reshape(-1, 4) / cfg.upscale
        out.append((cls, b, np.asarray(weights, np.float32).reshape(-1)))
    return out


def _correct(boxes: np.ndarray, m: tuple[float, float, float, float], hw: tuple[int, int]) -> np.ndarray:
    dx, dy, sw, sh = m
    cx = boxes[:, 0] + boxes[:, 2] * (0.5 + dx)
    cy = boxes[:, 1] + boxes[:, 3] * (0.5 + dy)
    w, h = boxes[:, 2] * sw, boxes[:, 3] * sh
    x0, y0 = np.clip(cx - w / 2, 0, hw[1]), np.clip(cy - h / 2, 0, hw[0])
    x1, y1 = np.clip(cx + w / 2, 0, hw[1]), np.clip(cy + h / 2, 0, hw[0])
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1).astype(np.float32)


def haar_detect(eval_data: DetectionSet, config: HaarConfig | None = None) -> tuple[list[Detections], dict[str, float]]:
    """Haar face (-> head) and upper-body (-> body) detections per frame, and the mean time per frame (ms)."""
    cfg = config or HaarConfig()
    cascades = _cascades(cfg.bodies)
    dets = []
    t0 = time.perf_counter()
    for img in eval_data.images:
        boxes, scores, labels = [], [], []
        for cls, b, w in _raw(img, cascades, cfg):
            boxes.append(_correct(b, cfg.face_to_head if cls == 0 else cfg.upper_to_body, img.shape))
            scores.append(w)
            labels.append(np.full(len(w), cls, np.int64))
        s = np.concatenate(scores) if scores else np.zeros(0, np.float32)
        order = np.argsort(-s, kind="stable")
        dets.append(Detections(np.concatenate(boxes)[order] if boxes else np.zeros((0, 4), np.float32),
                               s[order].astype(np.float32), np.concatenate(labels)[order] if labels
                               else np.zeros(0, np.int64)))
    return dets, {"haar_ms": 1000 * (time.perf_counter() - t0) / max(len(eval_data), 1)}


def calibrate_haar(train_data: DetectionSet, config: HaarConfig | None = None, min_matches: int = 10) -> HaarConfig:
    """Fit the face->head and upper-body->body corrections on ``train_data`` (median over matched boxes)."""
    cfg = config or HaarConfig()
    cascades = _cascades(cfg.bodies)
    fits: dict[int, list[tuple[float, float, float, float]]] = {0: [], 1: []}
    for img, lb in zip(train_data.images, train_data.labels):
        for cls, boxes, _ in _raw(img, cascades, cfg):
            gt = lb.boxes[(lb.labels == cls) & ~lb.crowd]
            for x, y, w, h in boxes:
                if not len(gt):
                    break
                gcx, gcy = gt[:, 0] + gt[:, 2] / 2, gt[:, 1] + gt[:, 3] / 2
                inside = (np.abs(gcx - (x + w / 2)) < w / 2) & (np.abs(gcy - (y + h / 2)) < h) & \
                         (gt[:, 2] < 3 * w) & (gt[:, 2] > w / 3)
                if inside.sum() != 1:                 # ambiguous or no match: skip
                    continue
                g = gt[np.argmax(inside)]
                fits[cls].append((((g[0] + g[2] / 2) - (x + w / 2)) / w, ((g[1] + g[3] / 2) - (y + h / 2)) / h,
                                  g[2] / w, g[3] / h))
    out = cfg
    for cls, name in ((0, "face_to_head"), (1, "upper_to_body")):
        if len(fits[cls]) >= min_matches:
            out = replace(out, **{name: tuple(float(v) for v in np.median(np.array(fits[cls]), axis=0))})
    return out
