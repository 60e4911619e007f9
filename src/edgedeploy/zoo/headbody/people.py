"""People, chairs and laptops in the room, drawn as camera-facing billboards with real face crops.

A person is placed on the floor plan (feet), seated at the table or standing; every body point is projected through
the wide camera, so far people shrink to a few pixels and bend with the lens like the room. The head is a hair
ellipse with a real LFW face (frontal), a skin profile (side) or hair only (turned away); the clothes are crops of
real photos (the uniform and space suit of the two bundled portraits, fur, coffee, bricks ...) with cylinder
shading and the room's light at that spot. Each sprite keeps its head mask and its range, so the scene can
composite it against the depth buffer and measure what stays visible.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import assets
from .camera import WideCamera
from .room import RoomLayout, irradiance


@dataclass(frozen=True)
class Person:
    """Floor position (x, z), head-centre height, size and look of one person; ``kind`` 'person'/'chair'/'laptop'."""

    x: float
    z: float
    head_y: float
    seated: bool
    facing: str            # 'camera' | 'side' | 'away'
    head_w: float = 0.58
    head_h: float = 0.78
    shoulder_w: float = 1.5
    face: int = 0
    hair: float = 0.15
    shirt: float = 0.5
    trousers: float = 0.15
    kind: str = "person"

    @property
    def range_ft(self) -> float:
        """Horizontal distance from the camera (the distance label)."""
        return float(np.hypot(self.x, self.z))


@dataclass
class Sprite:
    """A drawn object: its region (x0, y0) in the frame, radiance, coverage alpha, head mask and range."""

    x0: int
    y0: int
    value: np.ndarray
    alpha: np.ndarray
    head: np.ndarray | None
    depth: float


class _Canvas:
    """Draws billboard polygons/ellipses (feet, in the plane facing the camera at the object) into a region."""

    def __init__(self, cam: WideCamera, x: float, z: float, lateral: float, top: float, bottom: float) -> None:
        rng = max(float(np.hypot(x, z)), 1e-3)
        self.cam, self.x, self.z = cam, x, z
        self.ex, self.ez = z / rng, -x / rng
        corners = self.px(np.array([[-lateral, top], [lateral, top], [-lateral, bottom], [lateral, bottom]]))
        lo, hi = np.floor(corners.min(0)) - 2, np.ceil(corners.max(0)) + 2
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, [cam.width - 1, cam.height - 1])
        self.x0, self.y0 = int(lo[0]), int(lo[1])
        self.w, self.h = max(int(hi[0] - lo[0]) + 1, 1), max(int(hi[1] - lo[1]) + 1, 1)

    @property
    def empty(self) -> bool:
        return self.w <= 2 or self.h <= 2

    def px(self, pts: np.ndarray) -> np.ndarray:
        """Billboard points (N, 2) as (lateral, height) in feet -> frame pixels (N, 2)."""
        a, y = pts[:, 0], pts[:, 1]
        world = np.stack([self.x + a * self.ex, y, self.z + a * self.ez], axis=1)
        return self.cam.project(world)

    def mask(self) -> np.ndarray:
        return np.zeros((self.h, self.w), np.uint8)

    def poly(self, m: np.ndarray, pts: list[tuple[float, float]]) -> np.ndarray:
        import cv2

        p = ((self.px(np.array(pts, np.float64)) - [self.x0, self.y0]) * 8).round().astype(np.int32)
        cv2.fillPoly(m, [p], 255, cv2.LINE_AA, shift=3)
        return m

    def ellipse(self, m: np.ndarray, centre: tuple[float, float], axes_ft: tuple[float, float]) -> np.ndarray:
        import cv2

        n = 24
        ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
        pts = [(centre[0] + axes_ft[0] * np.cos(t), centre[1] + axes_ft[1] * np.sin(t)) for t in ang]
        p = ((self.px(np.array(pts)) - [self.x0, self.y0]) * 8).round().astype(np.int32)
        cv2.fillPoly(m, [p], 255, cv2.LINE_AA, shift=3)
        return m


def _shade(room: RoomLayout, cv: _Canvas, y: float) -> np.ndarray:
    """Irradiance across the sprite's width (left/right sides lit differently), shape (1, w)."""
    pts = np.array([[cv.x - 0.4 * cv.ex, y, cv.z - 0.4 * cv.ez], [cv.x + 0.4 * cv.ex, y, cv.z + 0.4 * cv.ez]],
                   np.float32)
    rng = max(np.hypot(cv.x, cv.z), 1e-3)
    toward = np.array([-cv.x / rng, 0.0, -cv.z / rng], np.float32)
    side = np.array([cv.ex, 0.0, cv.ez], np.float32)
    normals = np.stack([toward * 0.7 - side * 0.7, toward * 0.7 + side * 0.7])
    e = irradiance(room, pts, normals)
    return np.linspace(e[0], e[1], cv.w, dtype=np.float32)[None, :]


def _paint(value: np.ndarray, alpha: np.ndarray, mask: np.ndarray, tone: np.ndarray | float) -> None:
    a = mask.astype(np.float32) / 255.0
    value *= 1 - a
    value += a * tone
    np.maximum(alpha, a, out=alpha)


def draw(obj: Person, cam: WideCamera, room: RoomLayout, rng: np.random.Generator, faces: np.ndarray) -> Sprite | None:
    """Render one person/chair/laptop as a sprite, or None when it falls outside the frame."""
    import cv2

    if obj.kind == "chair":
        cv = _Canvas(cam, obj.x, obj.z, 0.9, 3.4, 1.3)
        if cv.empty:
            return None
        value, alpha = np.zeros((cv.h, cv.w), np.float32), np.zeros((cv.h, cv.w), np.float32)
        tone = obj.shirt * _shade(room, cv, 2.5)
        _paint(value, alpha, cv.poly(cv.mask(), [(-0.75, 3.3), (0.75, 3.3), (0.7, 1.9), (-0.7, 1.9)]), tone)
        _paint(value, alpha, cv.poly(cv.mask(), [(-0.8, 1.6), (0.8, 1.6), (0.8, 1.45), (-0.8, 1.45)]), tone * 0.8)
        _paint(value, alpha, cv.poly(cv.mask(), [(-0.06, 1.45), (0.06, 1.45), (0.06, 0.2), (-0.06, 0.2)]), 0.05)
        return Sprite(cv.x0, cv.y0, value, alpha, None, obj.range_ft)
    if obj.kind == "laptop":
        top = room.table[1]
        cv = _Canvas(cam, obj.x, obj.z, 0.6, top + 0.8, top)
        if cv.empty:
            return None
        value, alpha = np.zeros((cv.h, cv.w), np.float32), np.zeros((cv.h, cv.w), np.float32)
        screen = cv.poly(cv.mask(), [(-0.55, top + 0.75), (0.55, top + 0.75), (0.55, top), (-0.55, top)])
        patch = assets.non_faces()[obj.face % 100]
        tex = cv2.resize(patch, (cv.w, cv.h), interpolation=cv2.INTER_LINEAR) * obj.shirt
        _paint(value, alpha, screen, 0.03 + tex)
        return Sprite(cv.x0, cv.y0, value, alpha, None, obj.range_ft)
    return _draw_person(obj, cam, room, rng, faces)


def _draw_person(p: Person, cam: WideCamera, room: RoomLayout, rng: np.random.Generator,
                 faces: np.ndarray) -> Sprite | None:
    import cv2

    hy, hw, hh = p.head_y, p.head_w, p.head_h
    sw = p.shoulder_w * (0.62 if p.facing == "side" else 1.0)
    hip = 1.95 if p.seated else hy - 2.55
    cv = _Canvas(cam, p.x, p.z, sw / 2 + 0.35, hy + hh / 2 + 0.05, 0.0)
    if cv.empty:
        return None
    value, alpha = np.zeros((cv.h, cv.w), np.float32), np.zeros((cv.h, cv.w), np.float32)
    light = _shade(room, cv, hy - 1.0)
    # legs: seated -> shins under the seat; standing -> two legs
    legs = cv.mask()
    if p.seated:
        cv.poly(legs, [(-sw * 0.38, hip), (sw * 0.38, hip), (0.5, 0.0), (-0.5, 0.0)])
    else:
        for s in (-1, 1):
            cv.poly(legs, [(s * 0.05, hip), (s * sw * 0.36, hip), (s * 0.45, 0.0), (s * 0.12, 0.0)])
    _paint(value, alpha, legs, p.trousers * light)
    # torso, arms (clothing texture with cylinder shading)
    body = cv.mask()
    sh = hy - 0.72
    cv.poly(body, [(-sw / 2, sh), (sw / 2, sh), (sw * 0.42, hip), (-sw * 0.42, hip)])
    for s in (-1, 1):
        cv.ellipse(body, (s * (sw / 2 - 0.2), sh - 0.05), (0.22, 0.2))
        elbow = room.table[1] + 0.15 if p.seated else hip - 0.4
        cv.poly(body, [(s * (sw / 2 - 0.05), sh - 0.1), (s * (sw / 2 + 0.2), sh - 0.2), (s * (sw / 2 + 0.12), elbow),
                       (s * (sw / 2 - 0.22), elbow)])
    xs = np.linspace(-1, 1, cv.w, dtype=np.float32)[None, :]
    tex = assets.texture_patch(rng, assets.CLOTHING, cv.h, cv.w, contrast=rng.uniform(0.3, 0.9), mean=p.shirt)
    _paint(value, alpha, body, tex * (1 - 0.35 * xs * xs) * light)
    # neck and head
    face = faces[p.face % len(faces)]
    skin = float(face[8:18, 8:18].mean())
    neck = cv.poly(cv.mask(), [(-0.14, hy - 0.25), (0.14, hy - 0.25), (0.15, sh + 0.02), (-0.15, sh + 0.02)])
    _paint(value, alpha, neck, skin * 0.8 * light)
    head = cv.ellipse(cv.mask(), (0.0, hy), (hw / 2, hh / 2))
    hair_tex = p.hair * (0.8 + 0.4 * rng.random((cv.h, cv.w), np.float32))
    _paint(value, alpha, head, hair_tex * light)
    if p.facing == "camera":
        fm = cv.ellipse(cv.mask(), (0.0, hy - 0.06 * hh), (0.44 * hw, 0.4 * hh))
        box = cv.px(np.array([[-0.44 * hw, hy + 0.34 * hh], [0.44 * hw, hy - 0.46 * hh]])) - [cv.x0, cv.y0]
        (fx0, fy0), (fx1, fy1) = np.floor(box.min(0)).astype(int), np.ceil(box.max(0)).astype(int)
        fw, fh = fx1 - fx0, fy1 - fy0
        ys, xs_ = slice(max(fy0, 0), min(fy1, cv.h)), slice(max(fx0, 0), min(fx1, cv.w))
        if fw >= 1 and fh >= 1 and ys.start < ys.stop and xs_.start < xs_.stop:
            crop = cv2.resize(face, (fw, fh), interpolation=cv2.INTER_AREA if fw < 25 else cv2.INTER_CUBIC)
            layer = np.zeros((cv.h, cv.w), np.float32)
            layer[ys, xs_] = crop[ys.start - fy0:ys.stop - fy0, xs_.start - fx0:xs_.stop - fx0]
            soft = cv2.GaussianBlur(fm, (0, 0), max(0.6, fw / 12))
            _paint(value, alpha, np.minimum(soft, fm), np.clip(layer, 0, 1) * light * 1.1)
    elif p.facing == "side":
        side = 1 if rng.random() < 0.5 else -1
        prof = cv.ellipse(cv.mask(), (side * 0.16 * hw, hy - 0.1 * hh), (0.34 * hw, 0.38 * hh))
        _paint(value, alpha, prof, skin * light)
        ear = cv.ellipse(cv.mask(), (-side * 0.05 * hw, hy), (0.07 * hw, 0.11 * hh))
        _paint(value, alpha, ear, skin * 0.85 * light)
    return Sprite(cv.x0, cv.y0, value, alpha, head.astype(np.float32) / 255.0, p.range_ft)


def sample_people(room: RoomLayout, rng: np.random.Generator, n_faces: int, min_range: float = 3.0,
                  max_range: float = 20.0, max_people: int = 12) -> list[Person]:
    """Seat people around the table (some chairs empty), add a few standing ones; chairs and laptops too."""
    hw, _, z0, z1, _ = room.table
    out: list[Person] = []
    spacing = rng.uniform(2.4, 3.2)
    seats = [(s * (hw + rng.uniform(0.9, 1.3)), z) for s in (-1, 1) for z in np.arange(z0 + 1.2, z1 - 0.6, spacing)]
    seats.append((rng.uniform(-0.5, 0.5), z1 + rng.uniform(1.0, 1.5)))            # head of the table
    occupancy = rng.uniform(0.35, 0.9)
    people: list[Person] = []

    def person(x: float, z: float, seated: bool, facing: str) -> Person:
        return Person(x, z, (rng.uniform(3.9, 4.45) if seated else rng.uniform(5.1, 5.9)), seated, facing,
                      head_w=rng.uniform(0.52, 0.64), head_h=rng.uniform(0.72, 0.84),
                      shoulder_w=rng.uniform(1.3, 1.7), face=int(rng.integers(n_faces)),
                      hair=rng.choice([rng.uniform(0.03, 0.2), rng.uniform(0.3, 0.75)], p=[0.7, 0.3]),
                      shirt=rng.uniform(0.08, 0.85), trousers=rng.uniform(0.04, 0.35))

    for x, z in seats:
        at_end = abs(x) < 1.0
        rz = float(np.hypot(x, z))
        if rng.random() < occupancy and min_range <= rz <= max_range and len(people) < max_people:
            facing = "camera" if at_end else str(rng.choice(["camera", "side", "away"], p=[0.55, 0.35, 0.1]))
            people.append(person(x, z, True, facing))
            out.append(Person(x + np.sign(x) * 0.45, z + 0.15, 0.0, True, "away", shirt=rng.uniform(0.03, 0.3),
                              kind="chair"))
        elif rng.random() < 0.7:
            out.append(Person(x, z, 0.0, True, "away", shirt=rng.uniform(0.03, 0.3), kind="chair"))
        if abs(x) > 1.0 and rng.random() < 0.3:
            out.append(Person(np.sign(x) * (hw - 0.6), z, 0.0, True, "away", face=int(rng.integers(100)),
                              shirt=rng.uniform(0.3, 1.0), kind="laptop"))
    if rng.random() < 0.4:                                    # someone right beside the camera (3-5 ft)
        side, r, ang = rng.choice([-1, 1]), rng.uniform(min_range, min_range + 2.5), rng.uniform(0.35, 1.2)
        people.append(person(side * r * np.sin(ang), r * np.cos(ang), bool(rng.random() < 0.6),
                             str(rng.choice(["camera", "side"], p=[0.6, 0.4]))))
    for _ in range(int(rng.choice([0, 1, 2, 3], p=[0.3, 0.35, 0.25, 0.1]))):
        for _try in range(20):
            x, z = rng.uniform(-room.width / 2 + 1, room.width / 2 - 1), rng.uniform(1.0, room.depth - 1.5)
            clear = abs(x) > hw + 1.6 or z < z0 - 1.0 or z > z1 + 2.5
            if clear and min_range <= np.hypot(x, z) <= max_range and len(people) < max_people:
                people.append(person(x, z, False, str(rng.choice(["camera", "side", "away"], p=[0.5, 0.35, 0.15]))))
                break
    return out + people
