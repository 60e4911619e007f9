"""A 180-degree conference-room camera: equirectangular (azimuth/elevation linear in pixels) plus radial distortion.

World frame in feet: X right, Y up, Z forward (into the room); the camera sits at ``(0, height, 0)`` on the front
wall, tilted by ``tilt_deg`` (negative looks down). A ray's azimuth and elevation (radians) ``a`` map to the
distorted angles ``a * (1 + k1 |a|^2)`` and then linearly to pixels, scaled so ``fov_deg`` spans the image width:
straight table edges and walls bend as in a real panoramic conference camera (PanaCast-style), and ``k1`` adds the
lens's own barrel (> 0 compresses the edges less, < 0 more) on top.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class WideCamera:
    """Image size, horizontal field of view, radial distortion ``k1``, mounting height and tilt."""

    width: int = 1280
    height: int = 352
    fov_deg: float = 180.0
    k1: float = 0.0
    height_ft: float = 4.0
    tilt_deg: float = -4.0

    @property
    def focal(self) -> float:
        """Pixels per radian of distorted angle (so that +-fov/2 reach the image's left and right edges)."""
        half = math.radians(self.fov_deg) / 2
        return (self.width / 2) / (half * (1 + self.k1 * half * half))

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) in feet -> pixel coordinates (..., 2) as (u, v), u right, v down."""
        p = np.asarray(points, dtype=np.float64)
        x, y, z = p[..., 0], p[..., 1] - self.height_ft, p[..., 2]
        t = math.radians(self.tilt_deg)
        yc, zc = y * math.cos(t) - z * math.sin(t), y * math.sin(t) + z * math.cos(t)
        az = np.arctan2(x, zc)
        el = np.arctan2(yc, np.hypot(x, zc))
        gain = 1 + self.k1 * (az * az + el * el)
        f = self.focal
        return np.stack([self.width / 2 + f * az * gain - 0.5, self.height / 2 - f * el * gain - 0.5], axis=-1)

    def scale_at(self, point: np.ndarray) -> tuple[float, float]:
        """Local pixels per foot (horizontal, vertical) of a small object at ``point`` facing the camera."""
        p = np.asarray(point, dtype=np.float64)
        rng = math.hypot(p[0], p[2]) or 1e-6
        perp = np.array([p[2] / rng, 0.0, -p[0] / rng]) * 0.25     # horizontal, perpendicular to the view ray
        up = np.array([0.0, 0.25, 0.0])
        uv = self.project(np.stack([p - perp, p + perp, p - up, p + up]))
        return float(np.hypot(*(uv[1] - uv[0])) * 2), float(np.hypot(*(uv[3] - uv[2])) * 2)

    def rays(self) -> np.ndarray:
        """Unit ray direction (H, W, 3) float32 in world coordinates through every pixel centre."""
        return _rays(self)


@lru_cache(maxsize=12)
def _camera_frame_rays(width: int, height: int, focal: float, k1: float) -> np.ndarray:
    """Unit ray directions (3, H, W) float32 in the camera frame (depends on the lens, not the mounting)."""
    u = (np.arange(width, dtype=np.float64) + 0.5 - width / 2) / focal
    v = (height / 2 - np.arange(height, dtype=np.float64) - 0.5) / focal
    du, dv = np.meshgrid(u, v)
    rd = np.hypot(du, dv)
    r = rd.copy()
    for _ in range(4):                          # Newton on r (1 + k1 r^2) = rd
        r -= (r * (1 + k1 * r * r) - rd) / (1 + 3 * k1 * r * r)
    ratio = np.where(rd > 1e-12, r / np.maximum(rd, 1e-12), 1.0)
    az, el = du * ratio, dv * ratio
    out = np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)]).astype(np.float32)
    out.setflags(write=False)
    return out


def _rays(cam: WideCamera) -> np.ndarray:
    d = _camera_frame_rays(cam.width, cam.height, cam.focal, cam.k1)
    t = math.radians(cam.tilt_deg)
    c, s = np.float32(math.cos(t)), np.float32(math.sin(t))
    return np.stack([d[0], d[1] * c + d[2] * s, d[2] * c - d[1] * s], axis=-1)
