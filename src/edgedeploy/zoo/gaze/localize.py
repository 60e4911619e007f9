"""Eye patches in real photos with OpenCV's Haar cascades, and corrected patches pasted back (before/after).

Needs ``opencv-python-headless<5`` (version 5 ships no cascades). Photos that ship offline: scikit-image's
``astronaut`` and ``lfw_subset`` faces, matplotlib's ``grace_hopper.jpg`` (``sample_photos``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ...errors import ConfigError, ModelLoadError, ShapeError
from .model import PATCH, GazeCorrector, apply_field


@dataclass(frozen=True)
class LocalizeConfig:
    """Cascade settings and patch framing: each 4:3 patch is centred on an eye box and ``patch_width`` x the
    distance between the two eyes wide (eye boxes vary in size between photos; the eye distance does not:
    an eye is ~0.48 of it wide, and fills ~62% of a synthetic training patch)."""

    scale_factor: float = 1.05
    min_neighbors: int = 3
    min_face: int = 48
    patch_width: float = 0.8
    centre_dy: float = 0.05          # the eye sits a little below the cascade box centre (fraction of box height)

    def __post_init__(self) -> None:
        if self.scale_factor <= 1.0 or self.min_neighbors < 0 or self.min_face < 16 or self.patch_width <= 0:
            raise ConfigError(f"invalid LocalizeConfig {self}: scale_factor > 1, min_neighbors >= 0, "
                              "min_face >= 16 and patch_width > 0 are required")


@dataclass(frozen=True)
class EyePair:
    """One face and its two eye patches as (x, y, w, h) boxes in image pixels, left = the image's left eye."""

    face: tuple[int, int, int, int]
    left: tuple[float, float, float, float]
    right: tuple[float, float, float, float]


@dataclass
class CorrectedPhoto:
    """A photo before and after correction, with the eye pairs found and the per-eye fields used."""

    name: str
    before: np.ndarray
    after: np.ndarray
    pairs: list[EyePair]
    angle: float
    fields: list[np.ndarray] = field(default_factory=list)

    @property
    def changed_pixels(self) -> int:
        """Pixels whose value changed by more than 2 grey levels."""
        return int((np.abs(self.after.astype(np.int16) - self.before.astype(np.int16)).max(-1) > 2).sum())

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (no pixels)."""
        return {"name": self.name, "shape": list(self.before.shape), "angle": self.angle,
                "pairs": [{"face": list(p.face), "left": list(p.left), "right": list(p.right)} for p in self.pairs],
                "changed_pixels": self.changed_pixels}

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"gaze correction of {self.name} ({self.angle:g} deg up)", show_header=False)
        t.add_row("faces with both eyes", str(len(self.pairs)))
        t.add_row("pixels changed", f"{self.changed_pixels} of {self.before.shape[0] * self.before.shape[1]}")
        return t

    def png(self) -> bytes:
        """Before | after side by side, as PNG bytes (for the report)."""
        cv2 = _cv2()
        ok, buf = cv2.imencode(".png", cv2.cvtColor(np.concatenate([self.before, self.after], 1), cv2.COLOR_RGB2BGR))
        if not ok:
            raise ShapeError(f"cannot encode {self.name} ({self.before.shape}) as PNG")
        return buf.tobytes()


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise ModelLoadError("the eye localizer needs OpenCV's Haar cascades: pip install 'opencv-python-headless<5'") \
            from exc
    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
        raise ModelLoadError(f"OpenCV {cv2.__version__} has no Haar cascades (version 5 dropped them); "
                             "pip install 'opencv-python-headless<5'")
    return cv2


def _cascade(name: str) -> Any:
    cv2 = _cv2()
    c = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if c.empty():
        raise ModelLoadError(f"OpenCV cannot load {name} from {cv2.data.haarcascades}; "
                             "reinstall opencv-python-headless<5")
    return c


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, -1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ShapeError(f"expected an RGB image (H, W, 3) or a grey one (H, W); got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(image)


def find_eyes(image: np.ndarray, config: LocalizeConfig | None = None) -> list[EyePair]:
    """Faces (frontal-face cascade) and, in each, the best left/right pair of eye-cascade detections."""
    cv2 = _cv2()
    config = config or LocalizeConfig()
    grey = cv2.cvtColor(_as_rgb(image), cv2.COLOR_RGB2GRAY)
    faces = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        grey, 1.1, 5, minSize=(config.min_face, config.min_face))
    eye_cascade = _cascade("haarcascade_eye.xml")
    pairs = []
    for fx, fy, fw, fh in faces:
        roi = grey[fy:fy + int(fh * 0.6), fx:fx + fw]
        eyes = eye_cascade.detectMultiScale(roi, config.scale_factor, config.min_neighbors,
                                            minSize=(fw // 10, fw // 10), maxSize=(fw // 2, fw // 2))
        best = _best_pair([(x + fx, y + fy, w, h) for x, y, w, h in eyes], fw)
        if best is not None:
            distance = (best[1][0] + best[1][2] / 2) - (best[0][0] + best[0][2] / 2)
            left, right = (_patch_box(b, distance * config.patch_width, config) for b in best)
            pairs.append(EyePair(face=(int(fx), int(fy), int(fw), int(fh)), left=left, right=right))
    return pairs


def _best_pair(eyes: list[tuple[int, int, int, int]], face_w: int) -> tuple[Any, Any] | None:
    """Two boxes side by side at about the same height and size, a plausible eye distance apart."""
    best, best_cost = None, float("inf")
    for i, a in enumerate(eyes):
        for b in eyes[i + 1:]:
            left, right = (a, b) if a[0] < b[0] else (b, a)
            dx = (right[0] + right[2] / 2) - (left[0] + left[2] / 2)
            if not 0.25 * face_w < dx < 0.7 * face_w:
                continue
            cost = abs((left[1] + left[3] / 2) - (right[1] + right[3] / 2)) / face_w + abs(left[2] - right[2]) / face_w
            if cost < best_cost:
                best, best_cost = (left, right), cost
    return best


def _patch_box(box: tuple[int, int, int, int], pw: float, config: LocalizeConfig) -> tuple[float, float, float, float]:
    """A 4:3 patch centred on an eye box; whole-pixel size (a multiple of 4 wide) so crop and paste agree exactly."""
    x, y, w, h = box
    pw = 4.0 * max(4, round(pw / 4))
    ph = pw * PATCH[0] / PATCH[1]
    cx, cy = x + w / 2, y + h / 2 + config.centre_dy * h
    return (float(cx - pw / 2), float(cy - ph / 2), float(pw), float(ph))


def _crop(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """``box`` of the image as a 48x64 patch (float32 RGB 0-255): sub-pixel crop, area-averaged when shrinking."""
    cv2 = _cv2()
    x, y, w, h = box
    roi = cv2.getRectSubPix(image.astype(np.float32), (int(w), int(h)), (x + w / 2 - 0.5, y + h / 2 - 0.5))
    interp = cv2.INTER_AREA if w > PATCH[1] else cv2.INTER_LINEAR
    return cv2.resize(roi, (PATCH[1], PATCH[0]), interpolation=interp)


def _paste(image: np.ndarray, delta: np.ndarray, box: tuple[float, float, float, float]) -> None:
    """Add a patch-resolution change back into ``image`` (float) under a feathered elliptical mask."""
    cv2 = _cv2()
    x, y, w, h = box
    hgt, wid = image.shape[:2]
    m = np.array([[PATCH[1] / w, 0, -x * PATCH[1] / w + 0.5 * PATCH[1] / w - 0.5],
                  [0, PATCH[0] / h, -y * PATCH[0] / h + 0.5 * PATCH[0] / h - 0.5]])
    ys, xs = np.mgrid[0:PATCH[0], 0:PATCH[1]].astype(np.float32)
    r = np.sqrt(((xs - (PATCH[1] - 1) / 2) / (PATCH[1] / 2)) ** 2 + ((ys - (PATCH[0] - 1) / 2) / (PATCH[0] / 2)) ** 2)
    mask = np.clip((1.0 - r) / 0.25, 0.0, 1.0)[..., None]
    up = cv2.warpAffine((delta * mask).astype(np.float32), m, (wid, hgt), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    image += up


@torch.no_grad()
def correct_photo(model: GazeCorrector, image: np.ndarray, angle: float = 10.0, name: str = "photo",
                  config: LocalizeConfig | None = None) -> CorrectedPhoto:
    """Find every face's eyes, redirect the gaze up by ``angle`` degrees, and paste the corrected eyes back."""
    if not 0 <= angle <= 40:
        raise ConfigError(f"angle={angle} degrees is outside the trained range; use 0..40")
    rgb = _as_rgb(image)
    pairs = find_eyes(rgb, config)
    out = rgb.astype(np.float32)
    fields = []
    for pair in pairs:
        patches = [_crop(rgb, box) for box in (pair.left, pair.right)]
        greys = [p @ np.array([0.299, 0.587, 0.114], np.float32) for p in patches]
        plane = np.full(PATCH, float(angle), np.float32)
        x = torch.from_numpy(np.stack([greys[0], plane, greys[1], plane])[None])
        f = model.eval().fields(x)
        fields.append(f[0].numpy())
        for k, (box, patch) in enumerate(zip((pair.left, pair.right), patches)):
            p = torch.from_numpy(patch).permute(2, 0, 1)[None]
            corrected = apply_field(p, f[:, 4 * k:4 * k + 4])[0].permute(1, 2, 0).numpy()
            _paste(out, corrected - patch, box)
    after = np.clip(out, 0, 255).round().astype(np.uint8)
    return CorrectedPhoto(name=name, before=rgb, after=after, pairs=pairs, angle=angle, fields=fields)


def sample_photos(lfw_faces: int = 4) -> dict[str, np.ndarray]:
    """Real portraits that ship offline: astronaut, grace_hopper.jpg, and the first LFW faces (25x25, upscaled 8x)."""
    cv2 = _cv2()
    try:
        from matplotlib import cbook
        from skimage import data
    except ImportError as exc:
        raise ModelLoadError("the sample photos come with scikit-image and matplotlib: pip install scikit-image "
                             "matplotlib") from exc
    photos = {"astronaut": data.astronaut()}
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        import matplotlib.image as mpimg

        photos["grace_hopper"] = mpimg.imread(f, format="jpg")
    faces = data.lfw_subset()[:lfw_faces]          # the first 100 entries are faces
    for i, face in enumerate(faces):
        grey = (face * 255).round().astype(np.uint8)
        big = cv2.resize(grey, (200, 200), interpolation=cv2.INTER_CUBIC)
        photos[f"lfw_{i}"] = cv2.cvtColor(big, cv2.COLOR_GRAY2RGB)
    return photos
