"""Real-looking inputs for verification: camera frames (uint8) from photos bundled with installed packages, and
varied inputs around an example (random values in its range, real photos) for parity and range checks."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _photos() -> list[np.ndarray]:
    """RGB uint8 photos: scikit-image's bundled ones, else scikit-learn's sample images."""
    try:
        from skimage import data

        return [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    except Exception:  # noqa: BLE001 - optional package or a fetch-only image
        pass
    try:
        from sklearn.datasets import load_sample_images

        return list(load_sample_images().images)
    except Exception:  # noqa: BLE001 - needs Pillow
        return []


def _synthetic(h: int, w: int, i: int) -> np.ndarray:
    """A smooth, structured test card (gradients, disc, stripes) when no photo package is installed."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 255 * xx / max(w - 1, 1)
    g = 255 * yy / max(h - 1, 1)
    disc = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (min(h, w) / (3 + i)) ** 2
    b = np.where(disc, 230.0, 40.0) + 20 * ((xx // 8 + yy // 8) % 2)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def camera_frames(n: int, height: int, width: int, channels: int = 3, order: str = "BGR",
                  layout: str = "NHWC") -> np.ndarray:
    """``n`` uint8 frames resized from real photos, in ``order`` (BGR like OpenCV/cameras, or RGB) and ``layout``."""
    import torch
    import torch.nn.functional as F

    photos = _photos()
    frames = []
    for i in range(n):
        if photos:
            img = torch.from_numpy(np.ascontiguousarray(photos[i % len(photos)])).permute(2, 0, 1)[None].float()
            img = F.interpolate(img, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
            rgb = img[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        else:
            rgb = _synthetic(height, width, i)
        if channels == 1:
            frame = (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round()[..., None]
        else:
            frame = rgb[..., ::-1] if order.upper() == "BGR" else rgb
            if channels != 3:
                frame = np.resize(frame, (height, width, channels))
        frames.append(frame.astype(np.uint8))
    batch = np.stack(frames)                        # NHWC
    return np.ascontiguousarray(batch.transpose([ "NHWC".index(c) for c in layout.upper()]))


def varied_inputs(example: Sequence[Any], seed: int = 0) -> list[tuple[str, tuple[Any, ...]]]:
    """Parity inputs besides the example: seeded random ones in the example's value range, and real photos
    for image-like inputs, so a traced branch or a constant baked from one sample cannot pass unseen."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    rand, photo = [], []
    for x in example:
        if x.is_floating_point():
            lo, hi = float(x.min()), float(x.max())
            mean, std = float(x.float().mean()), float(x.float().std()) if x.numel() > 1 else 1.0
            std = std if std > 0 else 1.0
            rand.append((torch.randn(x.shape, generator=gen) * std + mean).to(x.dtype))
            if x.dim() == 4 and x.shape[1] in (1, 3) and min(x.shape[2:]) >= 4:
                frames = camera_frames(int(x.shape[0]), int(x.shape[2]), int(x.shape[3]), int(x.shape[1]),
                                       order="RGB", layout="NCHW").astype(np.float32) / 255.0
                span = (hi - lo) if hi > lo else 1.0
                photo.append(torch.from_numpy(frames * span + (lo if hi > lo else 0.0)).to(x.dtype))
            else:
                photo.append(None)
        elif x.dtype == torch.bool:
            rand.append(torch.rand(x.shape, generator=gen) > 0.5)
            photo.append(None)
        else:
            lo, hi = int(x.min()), int(x.max())
            rand.append(torch.randint(lo, max(hi, lo) + 1, x.shape, generator=gen, dtype=x.dtype))
            photo.append(None)
    out = [("random", tuple(rand))]
    if all(p is not None for p in photo):
        out.append(("photos", tuple(photo)))
    return out
