"""The conference room behind the people, ray-cast through the wide camera: walls, floor, ceiling lights, a table.

Every pixel's ray is intersected with the room's planes and the table's boxes (slab test); the nearest hit gives the
pixel's surface, its range (the depth buffer the people are composited against, so the table really occludes them)
and its shading (ambient + ceiling lights + the window, Lambert with distance fall-off). Surfaces carry real
pixels: a window with a bundled photo as the view, framed photos and a wall screen with a slide, a textured carpet
and table (see ``assets``). Units are feet.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import assets
from .camera import WideCamera

FLOOR, CEILING, LEFT, RIGHT, BACK, FRONT, TABLE_TOP, TABLE_SIDE, PEDESTAL = range(9)
_NORMALS = {FLOOR: (0, 1, 0), CEILING: (0, -1, 0), LEFT: (1, 0, 0), RIGHT: (-1, 0, 0), BACK: (0, 0, -1),
            FRONT: (0, 0, 1), TABLE_TOP: (0, 1, 0)}


@dataclass(frozen=True)
class Decor:
    """A picture on a wall: ``plane`` id, rectangle (s0, s1, t0, t1) in that wall's coordinates, the photo's name,
    whether it emits light (window, screen) and its brightness gain."""

    plane: int
    rect: tuple[float, float, float, float]
    photo: str
    emissive: bool
    gain: float
    frame: float = 0.15


@dataclass(frozen=True)
class RoomLayout:
    """One sampled room: its size, table box, surface albedos, decorations and lights."""

    width: float
    depth: float
    ceiling: float
    table: tuple[float, float, float, float, float]     # x half-width, top y, z0, z1, thickness
    albedo: dict[int, float]
    decor: tuple[Decor, ...]
    lights: tuple[tuple[float, float, float, float], ...]   # (x, y, z, intensity)
    ambient: float
    floor_texture: str
    seed: int = 0


def sample_room(rng: np.random.Generator) -> RoomLayout:
    """A random small/medium conference room (12-20 ft wide, 20-24 ft deep) with a long table along the view."""
    width, depth, ceiling = rng.uniform(12, 20), rng.uniform(20.5, 24), rng.uniform(8.5, 10)
    half_w, z0 = rng.uniform(1.75, 2.5), rng.uniform(1.8, 3.0)
    z1 = z0 + rng.uniform(10, min(17.0, depth - z0 - 3.5))
    wall = rng.uniform(0.45, 0.85)
    albedo = {FLOOR: rng.uniform(0.15, 0.45), CEILING: rng.uniform(0.75, 0.9), LEFT: wall * rng.uniform(0.85, 1.1),
              RIGHT: wall * rng.uniform(0.85, 1.1), BACK: rng.uniform(0.35, 0.85), FRONT: wall,
              TABLE_TOP: rng.uniform(0.12, 0.8)}
    albedo[TABLE_SIDE] = albedo[TABLE_TOP] * 0.7
    albedo[PEDESTAL] = rng.uniform(0.08, 0.3)
    decor: list[Decor] = []
    window_side = int(rng.choice([LEFT, RIGHT, -1], p=[0.35, 0.35, 0.3]))
    if window_side != -1:
        za = rng.uniform(2, 6)
        decor.append(Decor(window_side, (za, min(depth - 1, za + rng.uniform(8, 14)), rng.uniform(2.4, 3.2),
                                         ceiling - rng.uniform(0.5, 1.2)), str(rng.choice(assets.WINDOW_VIEWS)),
                           True, rng.uniform(1.1, 2.6), frame=0.25))
    screen_w = rng.uniform(4.5, 7)
    sx = rng.uniform(-width / 2 + screen_w / 2 + 0.5, width / 2 - screen_w / 2 - 0.5)
    sy = rng.uniform(3.8, 5.2)
    slide = str(rng.choice(assets.SLIDES)) if rng.random() < 0.6 else "black"
    decor.append(Decor(BACK, (sx - screen_w / 2, sx + screen_w / 2, sy, sy + screen_w * 9 / 16), slide, True,
                       rng.uniform(0.7, 1.3), frame=0.1))
    for _ in range(int(rng.integers(1, 5))):
        plane = int(rng.choice([LEFT, RIGHT, BACK]))
        if plane == window_side:
            continue
        w, h = rng.uniform(1.5, 4), rng.uniform(1.2, 3)
        s0 = rng.uniform(-width / 2 + 0.5, width / 2 - w - 0.5) if plane == BACK else rng.uniform(1, depth - w - 1)
        t0 = rng.uniform(3.5, max(3.6, ceiling - h - 0.8))
        decor.append(Decor(plane, (s0, s0 + w, t0, t0 + h), str(rng.choice(assets.WALL_ART)), False, 1.0))
    dim = rng.uniform(0.25, 1.0) if rng.random() < 0.3 else 1.0           # lights dimmed for a video call
    lights = tuple((float(x), ceiling - 0.05, float(z), float(dim * rng.uniform(18, 40)))
                   for x in (-width / 4, width / 4) for z in np.linspace(4, depth - 4, int(rng.integers(2, 4))))
    if window_side != -1:
        win = next(d for d in decor if d.plane == window_side)
        x = -width / 2 - 6 if window_side == LEFT else width / 2 + 6
        lights += ((x, 6.0, (win.rect[0] + win.rect[1]) / 2, float(60 * win.gain)),)
    return RoomLayout(width, depth, ceiling, (half_w, rng.uniform(2.4, 2.55), z0, z1, rng.uniform(0.08, 0.16)),
                      albedo, tuple(decor), lights, rng.uniform(0.12, 0.55), str(rng.choice(assets.FLOORS)),
                      seed=int(rng.integers(1 << 31)))


def _planes(room: RoomLayout, cam: WideCamera, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit range and surface id per pixel."""
    origin = (0.0, cam.height_ft, 0.0)
    t_best = np.full(d.shape[:2], np.inf, np.float32)
    ids = np.full(d.shape[:2], BACK, np.int8)
    with np.errstate(divide="ignore", invalid="ignore"):
        for pid, axis, value in ((FLOOR, 1, 0.0), (CEILING, 1, room.ceiling), (LEFT, 0, -room.width / 2),
                                 (RIGHT, 0, room.width / 2), (BACK, 2, room.depth), (FRONT, 2, -0.3)):
            t = (value - origin[axis]) / d[..., axis]
            hit = (t > 1e-3) & (t < t_best)
            t_best[hit], ids[hit] = t[hit], pid
        hw, top, z0, z1, thick = room.table
        ped = 0.8 if hw > 1.2 else 0.3
        for pid, lo, hi in ((TABLE_TOP, (-hw, top - thick, z0), (hw, top, z1)),
                            (PEDESTAL, (-hw + ped, 0.0, z0 + 1.0), (hw - ped, top - thick, z1 - 1.0))):
            t_lo = [(lo[a] - origin[a]) / d[..., a] for a in range(3)]
            t_hi = [(hi[a] - origin[a]) / d[..., a] for a in range(3)]
            near = [np.minimum(a, b) for a, b in zip(t_lo, t_hi)]
            far = np.minimum.reduce([np.maximum(a, b) for a, b in zip(t_lo, t_hi)])
            tn = np.maximum.reduce(near)
            hit = (tn < far) & (tn > 1e-3) & (tn < t_best)
            t_best[hit] = tn[hit]
            if pid == TABLE_TOP:
                from_top = hit & (near[1] >= np.maximum(near[0], near[2])) & (d[..., 1] < 0)
                ids[hit] = TABLE_SIDE
                ids[from_top] = TABLE_TOP
            else:
                ids[hit] = pid
    return t_best, ids


def _wall_coords(pid: int, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s, t) coordinates of points on a wall: back wall (x, y), side walls (z, y), floor/ceiling (x, z)."""
    if pid in (BACK, FRONT):
        return p[:, 0], p[:, 1]
    if pid in (LEFT, RIGHT):
        return p[:, 2], p[:, 1]
    return p[:, 0], p[:, 2]


def _sample(img: np.ndarray, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Nearest-neighbour sample of ``img`` at fractional coordinates in [0, 1]."""
    h, w = img.shape
    return img[np.clip((fy * (h - 1)).astype(np.int32), 0, h - 1), np.clip((fx * (w - 1)).astype(np.int32), 0, w - 1)]


def irradiance(room: RoomLayout, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Light reaching ``points`` (N, 3) with unit ``normals`` (N, 3) or one normal (3,): ambient + Lambert lights."""
    px, py, pz = points[:, 0], points[:, 1], points[:, 2]
    nx, ny, nz = (normals[..., 0], normals[..., 1], normals[..., 2])
    e = np.full(len(points), room.ambient, np.float32)
    for x, y, z, power in room.lights:
        vx, vy, vz = x - px, y - py, z - pz
        dist2 = np.maximum(vx * vx + vy * vy + vz * vz, 0.25)
        cos = np.clip((vx * nx + vy * ny + vz * nz) / np.sqrt(dist2), 0, 1)
        e += power * cos / (dist2 + 30.0)
    return e


def render_room(room: RoomLayout, cam: WideCamera, subsample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Radiance image (H, W) float32 (about 0..1, windows brighter) and per-pixel range in feet.

    The room is ray-cast at 1/``subsample`` resolution and upsampled (radiance bilinear, range nearest): walls and
    lights are smooth, the camera blurs anyway, and it is 4x faster; the people are drawn at full resolution.
    """
    import cv2

    if subsample > 1:
        small = replace(cam, width=cam.width // subsample, height=cam.height // subsample)
        img, t = render_room(room, small, 1)
        size = (cam.width, cam.height)
        return (cv2.resize(img, size, interpolation=cv2.INTER_LINEAR),
                cv2.resize(t, size, interpolation=cv2.INTER_NEAREST))
    rng = np.random.default_rng(room.seed)
    d = cam.rays()
    t, ids = _planes(room, cam, d)
    origin = np.array([0.0, cam.height_ft, 0.0], np.float32)
    img = np.zeros(t.shape, np.float32)
    photos = assets.photos()
    floor_tex = assets.texture_patch(rng, (room.floor_texture,), 256, 256, contrast=0.5)
    for pid in np.unique(ids):
        sel = ids == pid
        p = origin + d[sel] * t[sel][:, None]
        if pid in _NORMALS:
            n = np.array(_NORMALS[pid], np.float32)
        else:                                      # vertical faces of the table boxes face the camera's side
            n = np.zeros_like(p)
            ax = np.where(np.abs(d[sel][:, 0]) > np.abs(d[sel][:, 2]) * 0.3, 0, 2)
            n[np.arange(len(p)), ax] = -np.sign(d[sel][np.arange(len(p)), ax])
        alb = np.full(len(p), room.albedo[int(pid)], np.float32)
        s, tt = _wall_coords(int(pid), p)
        if pid == FLOOR:
            alb *= 0.6 + 0.8 * _sample(floor_tex, (s / 4) % 1, (tt / 4) % 1)
        elif pid in (TABLE_TOP, TABLE_SIDE):
            alb *= 0.85 + 0.3 * _sample(floor_tex, (s / 9) % 1, (tt / 1.5) % 1)
        elif pid in (LEFT, RIGHT, BACK):
            alb = np.where(tt < 0.35, alb * 0.45, alb)              # baseboard
        value = alb * irradiance(room, p, n)
        if pid == CEILING:                                          # light panels (2 x 4 ft) glow
            for x, _, z, _ in room.lights[:6]:
                value = np.where((np.abs(s - x) < 1) & (np.abs(tt - z) < 2), 1.6, value)
        for dec in room.decor:
            if dec.plane != pid:
                continue
            s0, s1, t0, t1 = dec.rect
            fr = dec.frame
            inside = (s >= s0 - fr) & (s <= s1 + fr) & (tt >= t0 - fr) & (tt <= t1 + fr)
            pic = (s >= s0) & (s <= s1) & (tt >= t0) & (tt <= t1)
            value = np.where(inside & ~pic, 0.08 * value + 0.05, value)
            if dec.photo == "black":
                shown = np.full(int(pic.sum()), 0.04, np.float32)
            else:
                src = photos[dec.photo]
                shown = _sample(src, (s[pic] - s0) / (s1 - s0), 1 - (tt[pic] - t0) / (t1 - t0))
            if dec.emissive:
                if dec.plane in (LEFT, RIGHT):                      # window mullions
                    bars = ((s[pic] - s0) % 3.5) < 0.18
                    shown = np.where(bars, 0.06, shown * dec.gain)
                else:
                    shown = shown * dec.gain
                value[pic] = shown
            else:
                value[pic] = shown * irradiance(room, p[pic], n if n.ndim == 1 else n[pic]) * 0.9
        img[sel] = value
    return img, t
