"""Real-looking camera frames (uint8) from photos bundled with installed packages, for verification."""
from __future__ import annotations

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
