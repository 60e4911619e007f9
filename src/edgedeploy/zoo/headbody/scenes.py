"""Seeded conference-room scenes with head/body boxes: what the 180-degree meeting camera sees.

One scene: a sampled room (``room.py``) ray-cast through a wide camera with random lens distortion, mounting
height and tilt (``camera.py``); people seated around the table or standing, 3-20 ft away, with chairs and laptops
(``people.py``); everything composited far to near against the depth buffer, so the table and nearer people occlude
farther ones. Then the sensor: exposure (lighting changes from dim to backlit by the window), a gamma tone curve,
vignetting, optical blur, shot + read noise and 8-bit quantization.

Labels (COCO xywh, pixels): a head box is the whole head ellipse; a body box is the visible extent of the person
(CrowdHuman's "visible box"). Objects mostly hidden (head < 50% visible, body < 25%) are marked ``crowd`` (ignored
by evaluation and training, as COCO's iscrowd); objects under 10% visible are not labelled. Each box carries the
person's distance from the camera in feet.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ...errors import ConfigError
from . import assets
from .camera import WideCamera
from .data import DetectionSet, ImageLabels
from .people import draw, sample_people
from .room import render_room, sample_room


@dataclass(frozen=True)
class SceneConfig:
    """What to generate: frame size and field of view, people's distance range, which faces (train/test), and the
    ranges the camera's exposure, distortion, blur and noise are drawn from."""

    height: int = 352
    width: int = 1280
    fov_deg: float = 180.0
    faces: str = "train"                       # "train" (70 LFW faces) or "test" (the other 30)
    min_range_ft: float = 3.0
    max_range_ft: float = 20.0
    max_people: int = 12
    exposure: tuple[float, float] = (0.45, 1.6)
    distortion_k1: tuple[float, float] = (-0.03, 0.05)
    blur_sigma: tuple[float, float] = (0.3, 1.1)
    read_noise: tuple[float, float] = (1.0, 6.0)   # in 8-bit levels; shot noise scales with brightness

    def __post_init__(self) -> None:
        if self.faces not in ("train", "test"):
            raise ConfigError(f"SceneConfig.faces must be 'train' or 'test' (got {self.faces!r}): test scenes use "
                              "faces never seen in training")
        if self.height < 32 or self.width < 32 or self.height % 32 or self.width % 32:
            raise ConfigError(f"frame size {self.height}x{self.width} must be multiples of 32 (the detector's stride)")
        if not 0 < self.min_range_ft < self.max_range_ft:
            raise ConfigError(f"need 0 < min_range_ft < max_range_ft (got {self.min_range_ft}, {self.max_range_ft})")
        if not 30 <= self.fov_deg <= 200:
            raise ConfigError(f"fov_deg={self.fov_deg} is out of range; use 30..200 (the meeting camera has 180)")
        for name in ("exposure", "distortion_k1", "blur_sigma", "read_noise"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ConfigError(f"SceneConfig.{name}=({lo}, {hi}): the low end exceeds the high end")
        if self.max_people < 1:
            raise ConfigError(f"max_people must be >= 1 (got {self.max_people})")


def _labels(sprites: list[tuple[int, object]], owner: np.ndarray, kinds: list[str], ranges: list[float],
            shape: tuple[int, int]) -> ImageLabels:
    boxes, labels, dists, crowd = [], [], [], []
    for sid, sp in sprites:
        if kinds[sid] != "person":
            continue
        h, w = sp.alpha.shape
        own = owner[sp.y0:sp.y0 + h, sp.x0:sp.x0 + w] == sid
        body_full = sp.alpha > 0.5
        for label, full in ((0, sp.head > 0.5), (1, body_full)):
            n_full = int(full.sum())
            if n_full == 0:
                continue
            vis = full & own
            frac = vis.sum() / n_full
            if frac < 0.10:
                continue
            m = full if label == 0 else vis
            ys, xs = np.nonzero(m)
            x0, y0 = sp.x0 + xs.min(), sp.y0 + ys.min()
            x1, y1 = min(sp.x0 + xs.max() + 1, shape[1]), min(sp.y0 + ys.max() + 1, shape[0])
            boxes.append((x0, y0, x1 - x0, y1 - y0))
            labels.append(label)
            dists.append(ranges[sid])
            crowd.append(frac < (0.5 if label == 0 else 0.25))
    if not boxes:
        return ImageLabels.empty()
    return ImageLabels(np.array(boxes, np.float32), np.array(labels, np.int64), np.array(dists, np.float32),
                       np.array(crowd, bool))


def render_scene(config: SceneConfig, seed: int) -> tuple[np.ndarray, ImageLabels]:
    """One frame (uint8 H x W) and its labels; the same (config, seed) always gives the same pixels."""
    import cv2

    rng = np.random.default_rng(seed)
    room = sample_room(rng)
    k1 = round(float(rng.uniform(*config.distortion_k1)) / 0.01) * 0.01     # a few lenses: cached rays
    cam = WideCamera(config.width, config.height, config.fov_deg, k1,
                     float(rng.uniform(3.6, 4.6)), float(rng.uniform(-8, 0)))
    img, depth = render_room(room, cam)
    faces = assets.faces(config.faces)
    objects = sample_people(room, rng, len(faces), config.min_range_ft, config.max_range_ft, config.max_people)
    objects.sort(key=lambda o: -o.range_ft)
    owner = np.full(img.shape, -1, np.int32)
    drawn: list[tuple[int, object]] = []
    for sid, obj in enumerate(objects):
        sp = draw(obj, cam, room, rng, faces)
        if sp is None:
            continue
        h, w = sp.alpha.shape
        region = (slice(sp.y0, sp.y0 + h), slice(sp.x0, sp.x0 + w))
        a = sp.alpha * (depth[region] > sp.depth)
        img[region] = img[region] * (1 - a) + sp.value * a
        solid = a > 0.5
        depth[region][solid] = sp.depth
        owner[region][solid] = sid
        drawn.append((sid, sp))
    labels = _labels(drawn, owner, [o.kind for o in objects], [o.range_ft for o in objects], img.shape)
    # sensor: exposure, vignetting, tone curve, optics, noise, 8-bit
    yy, xx = np.mgrid[0:config.height, 0:config.width].astype(np.float32)
    r2 = ((xx - config.width / 2) / (config.width / 2)) ** 2 + ((yy - config.height / 2) / config.width) ** 2
    img = img * float(rng.uniform(*config.exposure)) * (1 - float(rng.uniform(0.1, 0.4)) * r2)
    img = np.clip(img, 0, None) ** (1 / float(rng.uniform(1.8, 2.4)))
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(*config.blur_sigma)))
    img = np.clip(img, 0, 1) * 255
    shot = float(rng.uniform(0.2, 0.8))
    img += rng.standard_normal(img.shape, np.float32) * np.sqrt(float(rng.uniform(*config.read_noise)) ** 2
                                                                + shot * img)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), labels


def generate_scenes(n: int, config: SceneConfig | None = None, seed: int = 0, progress: bool = True) -> DetectionSet:
    """``n`` seeded scenes (scene ``i`` is seeded by (seed, i, faces split), so sets are reproducible and a test set
    never shares a room, a person or a face with a training set)."""
    config = config or SceneConfig()
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"number of scenes must be an int >= 1 (got {n!r})")
    split = 0 if config.faces == "train" else 1
    images, labels = [], []
    seeds = [int(np.random.SeedSequence([seed, i, split]).generate_state(1)[0]) for i in range(n)]
    if progress and n >= 8:
        from rich.progress import track

        it = track(seeds, description=f"generating {n} {config.faces} scenes", transient=True)
    else:
        it = seeds
    for s in it:
        img, lb = render_scene(config, s)
        images.append(img)
        labels.append(lb)
    names = [f"{config.faces}_{seed}_{i:05d}.png" for i in range(n)]
    return DetectionSet(images, labels, names, {"generator": "edgedeploy.zoo.headbody.scenes", "seed": seed,
                                                "config": asdict(config)})
