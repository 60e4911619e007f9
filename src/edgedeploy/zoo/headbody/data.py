"""``DetectionSet``: grayscale frames with head/body boxes (COCO xywh pixels), distances and ignore flags."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import ShapeError
from .postprocess import CATEGORIES    # label 0 = head, 1 = body; COCO category ids are label + 1
DISTANCE_BINS_FT = ((3.0, 6.0), (6.0, 10.0), (10.0, 15.0), (15.0, 20.0))


@dataclass(frozen=True)
class ImageLabels:
    """Boxes of one image: ``boxes`` (k, 4) x, y, w, h in pixels; ``labels`` 0 head / 1 body; ``distances`` in
    feet (NaN when unknown); ``crowd`` marks regions evaluation ignores (mostly hidden people, as COCO iscrowd)."""

    boxes: np.ndarray
    labels: np.ndarray
    distances: np.ndarray
    crowd: np.ndarray

    @staticmethod
    def empty() -> ImageLabels:
        """No objects."""
        return ImageLabels(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32),
                           np.zeros(0, bool))

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class DetectionSet:
    """Frames (uint8 H x W grayscale) with their labels and file names; what training and evaluation consume."""

    images: list[np.ndarray]
    labels: list[ImageLabels]
    file_names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (len(self.images) == len(self.labels) == len(self.file_names)):
            raise ShapeError(f"DetectionSet needs one label set and file name per image (got {len(self.images)} "
                             f"images, {len(self.labels)} label sets, {len(self.file_names)} names)")
        for name, img in zip(self.file_names, self.images):
            if img.dtype != np.uint8 or img.ndim != 2:
                raise ShapeError(f"image {name}: expected a uint8 grayscale H x W array, got {img.dtype} "
                                 f"{img.shape}; convert it with cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: list[int] | range) -> DetectionSet:
        """The images at ``index`` (same order)."""
        idx = list(index)
        return DetectionSet([self.images[i] for i in idx], [self.labels[i] for i in idx],
                            [self.file_names[i] for i in idx], dict(self.meta))

    def tensor(self, index: list[int] | range | None = None) -> Any:
        """Frames as a float32 torch tensor (N, 1, H, W) in [0, 1], the model's input (all frames one size)."""
        import torch

        idx = range(len(self)) if index is None else index
        shapes = {self.images[i].shape for i in idx}
        if len(shapes) > 1:
            raise ShapeError(f"frames have different sizes {sorted(shapes)}; "
                             "load them with load_coco(..., size=(H, W))")
        return torch.from_numpy(np.stack([self.images[i] for i in idx])[:, None].astype(np.float32) / 255.0)

    def counts(self) -> dict[str, int]:
        """Number of images and of labelled (non-ignored) heads and bodies."""
        out = {"images": len(self)}
        for k, name in enumerate(CATEGORIES):
            out[name + "s"] = int(sum(int(((lb.labels == k) & ~lb.crowd).sum()) for lb in self.labels))
        out["ignored"] = int(sum(int(lb.crowd.sum()) for lb in self.labels))
        return out


def render_text(obj: Any, width: int = 160) -> str:
    """Plain-text rendering of a rich renderable (what ``str()`` of a result shows)."""
    import io

    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO())
    console.print(obj)
    return console.export_text()


def letterbox(image: np.ndarray, labels: ImageLabels, size: tuple[int, int]) -> tuple[np.ndarray, ImageLabels]:
    """Resize ``image`` to fit (H, W) keeping its aspect, pad with mid-gray, and move the boxes with it."""
    import cv2

    h, w = image.shape
    th, tw = size
    scale = min(th / h, tw / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = np.full((th, tw), 114, np.uint8)
    y0, x0 = (th - nh) // 2, (tw - nw) // 2
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out[y0:y0 + nh, x0:x0 + nw] = cv2.resize(image, (nw, nh), interpolation=interp)
    boxes = labels.boxes.astype(np.float32) * scale + np.array([x0, y0, 0, 0], np.float32)
    return out, ImageLabels(boxes, labels.labels, labels.distances, labels.crowd)
