"""Seeded synthetic eye patches with known gaze: "looking down at the screen" -> "looking at the camera" pairs.

Each patch (48x64 RGB, pixel centres at integer coordinates) is rendered analytically with soft (anti-aliased)
edges: skin with texture, brow shadow, lid crease, eyelids, lash line and eyelashes, sclera with shading and a
caruncle, an iris with radial texture and limbal ring, a pupil, a corneal highlight, then lighting (gain, a
gradient, a colour tint) and, on the input only, sensor noise. Head-pose jitter (shift, roll, scale, yaw
foreshortening) moves the whole eye. The target is the same scene with the gaze raised by the redirection angle
to the camera, so every error is measurable. Right eyes are rendered mirrored (inner corner towards the nose).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from ...errors import ConfigError

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_LASHES = 18


@dataclass(frozen=True)
class EyeConfig:
    """Ranges the generator samples from; angles in degrees, lengths in pixels of a 48x64 patch."""

    height: int = 48
    width: int = 64
    down_deg: tuple[float, float] = (8.0, 20.0)   # gaze below the camera while reading the screen = redirection
    yaw_deg: tuple[float, float] = (-15.0, 15.0)  # horizontal gaze, kept by the correction
    noise: tuple[float, float] = (0.5, 2.5)       # sensor noise sigma on the input, in grey levels (0-255)
    jitter_px: float = 2.0                        # head-pose jitter: eye centre shift
    roll_deg: float = 6.0                         # head roll
    scale: tuple[float, float] = (0.9, 1.1)       # eye size (distance to the camera)

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16:
            raise ConfigError(f"eye patches of {self.height}x{self.width} are too small; use at least 16x16")
        for name in ("down_deg", "yaw_deg", "noise", "scale"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ConfigError(f"EyeConfig.{name}={getattr(self, name)} must be (low, high) with low <= high")
        if not (0 <= self.down_deg[0] and self.down_deg[1] <= 40):
            raise ConfigError(f"down_deg={self.down_deg} must lie within 0..40 degrees")
        if self.noise[0] < 0 or self.jitter_px < 0 or self.roll_deg < 0 or self.scale[0] <= 0:
            raise ConfigError("noise, jitter_px and roll_deg must be >= 0 and scale > 0")


@dataclass(frozen=True)
class EyeScene:
    """Per-sample scene parameters (arrays of shape (n,)); ``side`` is +1 for the image-left eye, -1 mirrored."""

    cx: np.ndarray
    cy: np.ndarray
    roll: np.ndarray
    scale: np.ndarray
    head_yaw: np.ndarray
    half_width: np.ndarray
    lid_up: np.ndarray
    lid_lo: np.ndarray
    radius: np.ndarray        # eyeball radius (px): converts iris displacement to a gaze angle
    iris_r: np.ndarray
    pupil: np.ndarray
    yaw: np.ndarray
    iris_rgb: np.ndarray      # (n, 3)
    skin_rgb: np.ndarray      # (n, 3)
    tint: np.ndarray          # (n, 3)
    gain: np.ndarray
    grad: np.ndarray          # (n, 2) lighting gradient per pixel
    light: np.ndarray         # (n, 2) corneal highlight offset
    spec: np.ndarray
    crease: np.ndarray
    phase: np.ndarray         # (n, 8) texture phases
    freq: np.ndarray          # (n, 8, 2) texture frequencies
    lash_len: np.ndarray      # (n, L)
    lash_tilt: np.ndarray     # (n, L)
    side: int = 1

    def take(self, idx: np.ndarray | slice) -> EyeScene:
        """The scenes at ``idx``."""
        return replace(self, **{f.name: getattr(self, f.name)[idx] for f in fields(self) if f.name != "side"})

    def mirrored(self) -> EyeScene:
        """The same head seen for the other eye: side flipped, horizontal quantities negated."""
        return replace(self, side=-self.side, yaw=-self.yaw, head_yaw=-self.head_yaw, roll=-self.roll,
                       grad=self.grad * np.array([-1.0, 1.0]), light=self.light * np.array([-1.0, 1.0]))


def sample_scenes(n: int, rng: np.random.Generator, config: EyeConfig) -> EyeScene:
    """Draw ``n`` random scenes (image-left eyes) from ``config``'s ranges."""
    u = rng.uniform
    s = u(*config.scale, n)
    hw = u(18.5, 22.0, n)
    hue = rng.integers(0, 4, n)               # brown, blue, green, grey irises
    base = np.array([[0.35, 0.2, 0.1], [0.3, 0.45, 0.6], [0.3, 0.42, 0.25], [0.42, 0.42, 0.42]])[hue]
    skin = np.array([0.85, 0.62, 0.5]) * u(0.45, 1.1, (n, 1)) + u(-0.04, 0.04, (n, 3))
    return EyeScene(
        cx=config.width / 2 - 0.5 + u(-1, 1, n) * config.jitter_px,
        cy=config.height / 2 - 0.5 + u(-1, 1, n) * config.jitter_px,
        roll=np.radians(u(-1, 1, n) * config.roll_deg), scale=s, head_yaw=np.radians(u(-15, 15, n)),
        half_width=hw, lid_up=u(8.5, 11.5, n), lid_lo=u(5.0, 7.0, n), radius=hw * u(0.78, 0.86, n),
        iris_r=u(7.0, 8.3, n), pupil=u(0.3, 0.5, n), yaw=np.radians(u(*config.yaw_deg, n)),
        iris_rgb=base * u(0.6, 1.25, (n, 1)), skin_rgb=np.clip(skin, 0.1, 1.0),
        tint=1.0 + u(-0.08, 0.08, (n, 3)), gain=u(0.55, 1.15, n), grad=u(-0.012, 0.012, (n, 2)),
        light=u(-3.0, 3.0, (n, 2)), spec=u(0.5, 1.0, n), crease=u(5.5, 8.5, n),
        phase=u(0, 2 * np.pi, (n, 8)), freq=u(0.15, 1.1, (n, 8, 2)) * rng.choice([-1, 1], (n, 8, 2)),
        lash_len=u(2.5, 5.5, (n, _LASHES)), lash_tilt=u(0.2, 0.9, (n, _LASHES)))


def _soft(d: np.ndarray, width: float = 0.5) -> np.ndarray:
    """Coverage of a shape from its signed distance in pixels (negative inside), anti-aliased."""
    return 0.5 - 0.5 * np.tanh(d / (2 * width))


def _b(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32)[:, None, None]


def render_eyes(scene: EyeScene, down_deg: np.ndarray, config: EyeConfig) -> tuple[np.ndarray, np.ndarray]:
    """RGB patches (n, H, W, 3) in [0, 1] with the gaze ``down_deg`` below the camera, and iris centres (n, 2)."""
    h, w = config.height, config.width
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if scene.side < 0:
        xs = (w - 1) - xs                   # render mirrored, so the right eye's inner corner faces the nose
    pitch = np.radians(np.asarray(down_deg, np.float32))
    s, cr, sr = _b(scene.scale), _b(np.cos(scene.roll)), _b(np.sin(scene.roll))
    dx, dy = xs[None] - _b(scene.cx), ys[None] - _b(scene.cy)
    uu, vv = (cr * dx + sr * dy) / s, (-sr * dx + cr * dy) / s      # canonical eye frame, 1 unit = 1 px at scale 1
    a = _b(scene.half_width * np.cos(scene.head_yaw))
    t = np.clip((uu - 0.12 * a) / a, -1.0, 1.0)
    shape = np.sqrt(np.clip(1 - t * t, 0, 1))
    rad = _b(scene.radius)
    drop = rad * _b(np.sin(pitch))                                   # iris and upper lid follow the gaze down
    peak = _b(scene.lid_up) - 1.05 * drop                            # upper-lid height above the centre
    v_up = -peak * shape ** 0.9
    v_lo = (_b(scene.lid_lo) + 0.25 * drop) * shape ** 1.3
    inside = _soft(np.maximum.reduce([v_up - vv, vv - v_lo, np.abs(uu) - a]) * s)
    # skin: texture attached to the face (canonical frame), brow shadow, crease, lid margin
    tex = np.zeros_like(uu)
    for k in range(8):
        amp = 0.025 if k < 4 else 0.008
        tex += amp * np.sin(_b(scene.freq[:, k, 0]) * uu * (1 + 2 * (k >= 4)) + _b(scene.freq[:, k, 1]) * vv *
                            (1 + 2 * (k >= 4)) + _b(scene.phase[:, k]))
    skin_l = (1 + tex) * (1 - 0.35 * _soft(vv + 19.0, 3.0)) * (1 - 0.25 * np.exp(-((vv - v_up + _b(scene.crease))
                                                                                      ** 2) / 2.0))
    skin = _b3(scene.skin_rgb) * skin_l[..., None]
    # sclera with corner darkening, lid shadow and a pink caruncle at the inner corner
    sclera_l = (0.92 - 0.22 * t ** 4) * (1 - 0.35 * np.exp(-np.clip(vv - v_up, 0, None) / 2.2))
    sclera = np.stack([sclera_l, sclera_l * 0.96, sclera_l * 0.94], -1)
    car = np.exp(-(((uu - 0.9 * a) ** 2 + (vv - 0.6) ** 2) / 6.0))[..., None]
    sclera = sclera * (1 - car) + car * np.array([0.85, 0.5, 0.5], np.float32)
    # iris (foreshortened ellipse) with radial stripes, a dark limbal ring and the pupil
    icu = rad * _b(np.sin(scene.yaw) * np.cos(pitch))
    icv = -1.0 + drop
    ru, rv = _b(scene.iris_r * np.cos(scene.yaw)), _b(scene.iris_r * np.cos(pitch))
    rho = np.sqrt(((uu - icu) / ru) ** 2 + ((vv - icv) / rv) ** 2)
    theta = np.arctan2(vv - icv, uu - icu)
    stripes = 1 + 0.18 * np.sin(14 * theta + _b(scene.phase[:, 0])) * np.sin(5 * theta + _b(scene.phase[:, 1]))
    iris_l = stripes * (1 - 0.55 * _soft((0.82 - rho) * _b(scene.iris_r) * s, 1.2)) * (0.8 + 0.4 * rho)
    iris = _b3(scene.iris_rgb) * iris_l[..., None]
    iris_m = _soft((rho - 1) * _b(scene.iris_r) * s)[..., None]
    pupil_m = _soft((rho - _b(scene.pupil)) * _b(scene.iris_r) * s)[..., None]
    eye = sclera * (1 - iris_m) + iris_m * (iris * (1 - pupil_m) + 0.04 * pupil_m)
    spec_d = (uu - icu - _b(scene.light[:, 0])) ** 2 + (vv - icv - 0.5 * _b(scene.light[:, 1])) ** 2
    eye = eye + (_b(scene.spec) * np.exp(-spec_d / 1.3) * _soft((rho - 1.15) * 4))[..., None]
    img = skin * (1 - inside[..., None]) + eye * inside[..., None]
    margin = _soft((np.abs(vv - v_up) - 0.8 * shape) * s, 0.4) * (np.abs(uu) < a + 1)
    img = img * (1 - 0.8 * margin[..., None])
    img = img * (1 - 0.85 * _lashes(uu, vv, a, peak, scene, s))[..., None]
    light = _b(scene.gain) * (1 + _b(scene.grad[:, 0]) * dx + _b(scene.grad[:, 1]) * dy)
    img = np.clip(img * light[..., None] * _b3(scene.tint), 0.0, 1.0)
    iris_xy = np.stack(_to_image(icu[:, 0, 0], np.broadcast_to(icv, icu.shape)[:, 0, 0], scene, w), -1)
    return img.astype(np.float32), iris_xy.astype(np.float32)


def _b3(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32)[:, None, None, :]


def _lashes(uu: np.ndarray, vv: np.ndarray, a: np.ndarray, peak: np.ndarray, scene: EyeScene,
            s: np.ndarray) -> np.ndarray:
    """Coverage of the upper eyelashes: short dark segments rooted on the lid margin, pointing up and outwards."""
    cover = np.zeros_like(uu)
    for k, r in enumerate(np.linspace(-0.85, 0.75, _LASHES)):
        u0 = r * a
        tr = np.clip((u0 - 0.12 * a) / a, -1, 1)
        v0 = -peak * np.sqrt(1 - tr * tr) ** 0.9          # on the upper-lid curve
        length, tilt = _b(scene.lash_len[:, k]), _b(scene.lash_tilt[:, k])
        du, dv = -tilt * (0.3 + 0.7 * (1 - r)) * length, -length * (1 - 0.3 * tilt)   # up, towards the outer corner
        pu, pv = uu - u0, vv - v0
        proj = np.clip((pu * du + pv * dv) / (du * du + dv * dv), 0, 1)
        dist = np.sqrt((pu - proj * du) ** 2 + (pv - proj * dv) ** 2)
        cover = np.maximum(cover, _soft((dist - 0.35) * s, 0.35))
    return cover


def _to_image(u: np.ndarray, v: np.ndarray, scene: EyeScene, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Canonical eye coordinates -> image pixel coordinates (x, y)."""
    x = scene.cx + scene.scale * (np.cos(scene.roll) * u - np.sin(scene.roll) * v)
    y = scene.cy + scene.scale * (np.sin(scene.roll) * u + np.cos(scene.roll) * v)
    return ((w - 1) - x if scene.side < 0 else x), y


@dataclass(frozen=True)
class GazePairs:
    """Eye-pair samples: model inputs, true targets and the geometry needed to score a correction.

    ``inputs`` (n, 4, H, W) float32 = [left grey, left angle plane, right grey, right angle plane] (grey in
    0-255, angle = redirection in degrees); ``targets`` (n, 2, H, W) = true left/right grey patches looking at
    the camera (noise-free); ``iris_in``/``iris_target`` (n, 2, 2) = iris centres (eye, xy) in pixels;
    ``radius`` (n, 2) = eyeball radius in pixels; ``clean`` (n, 2, H, W) = the input grey patches before sensor
    noise (to separate the correction's own flicker from camera noise); ``rgb_in``/``rgb_target``
    (n, 2, H, W, 3) when asked.
    """

    inputs: np.ndarray
    targets: np.ndarray
    clean: np.ndarray
    iris_in: np.ndarray
    iris_target: np.ndarray
    radius: np.ndarray
    angle: np.ndarray
    rgb_in: np.ndarray | None = None
    rgb_target: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def take(self, idx: np.ndarray | slice) -> GazePairs:
        """The samples at ``idx``."""
        return GazePairs(**{f.name: (None if getattr(self, f.name) is None else getattr(self, f.name)[idx])
                            for f in fields(self)})

    def eye(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        """(inputs (n, 2, H, W), targets (n, 1, H, W)) of one eye: ``side`` is "left" or "right" (in the image)."""
        if side not in ("left", "right"):
            raise ConfigError(f"side={side!r}: choose 'left' or 'right'")
        k = 0 if side == "left" else 1
        return self.inputs[:, 2 * k:2 * k + 2], self.targets[:, k:k + 1]


def _render_pairs(scene: EyeScene, down: np.ndarray, noise: np.ndarray, rng: np.random.Generator,
                  config: EyeConfig, rgb: bool) -> GazePairs:
    greys_in, greys_t, clean, iris_in, iris_t, rgb_in, rgb_t = [], [], [], [], [], [], []
    for eye_scene in (scene, scene.mirrored()):
        img_in, c_in = render_eyes(eye_scene, down, config)
        img_t, c_t = render_eyes(eye_scene, np.zeros_like(down), config)
        noisy = np.clip(img_in + rng.normal(0.0, 1.0, img_in.shape).astype(np.float32) *
                        (noise[:, None, None, None] / 255.0), 0.0, 1.0)
        greys_in.append(255.0 * noisy @ LUMA)
        greys_t.append(255.0 * img_t @ LUMA)
        clean.append(255.0 * img_in @ LUMA)
        iris_in.append(c_in)
        iris_t.append(c_t)
        if rgb:
            rgb_in.append(noisy)
            rgb_t.append(img_t)
    plane = np.broadcast_to(down[:, None, None], greys_in[0].shape)
    inputs = np.stack([greys_in[0], plane, greys_in[1], plane], 1).astype(np.float32)
    r = (scene.radius * scene.scale).astype(np.float32)
    return GazePairs(inputs=inputs, targets=np.stack(greys_t, 1).astype(np.float32),
                     clean=np.stack(clean, 1).astype(np.float32),
                     iris_in=np.stack(iris_in, 1), iris_target=np.stack(iris_t, 1), radius=np.stack([r, r], 1),
                     angle=down.astype(np.float32), rgb_in=np.stack(rgb_in, 1) if rgb else None,
                     rgb_target=np.stack(rgb_t, 1) if rgb else None)


def _concat(parts: list[GazePairs]) -> GazePairs:
    return GazePairs(**{f.name: (None if getattr(parts[0], f.name) is None else
                                 np.concatenate([getattr(p, f.name) for p in parts]))
                        for f in fields(GazePairs)})


def make_pairs(n: int, config: EyeConfig | None = None, seed: int = 0, rgb: bool = False,
               chunk: int = 128, progress: bool = False) -> GazePairs:
    """``n`` random eye pairs looking down at the screen, with the true patches looking at the camera; seeded."""
    from rich.progress import Progress

    config = config or EyeConfig()
    if n < 1:
        raise ConfigError(f"make_pairs needs n >= 1 (got {n})")
    rng = np.random.default_rng(seed)
    scene = sample_scenes(n, rng, config)
    down = rng.uniform(*config.down_deg, n).round().astype(np.float32)   # whole degrees: a u8 input can carry it
    noise = rng.uniform(*config.noise, n)
    parts = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("rendering eye pairs", total=n)
        for i in range(0, n, chunk):
            parts.append(_render_pairs(scene.take(slice(i, i + chunk)), down[i:i + chunk], noise[i:i + chunk], rng,
                                       config, rgb))
            bar.advance(task, min(chunk, n - i))
    return _concat(parts)


_MOVING = ("cx", "cy", "roll", "scale", "head_yaw", "yaw", "gain", "grad", "light")


def make_sequence(frames: int = 48, config: EyeConfig | None = None, seed: int = 0, rgb: bool = False) -> GazePairs:
    """A slowly moving video of one face: head, gaze and light drift smoothly; fresh sensor noise every frame."""
    config = config or EyeConfig()
    if frames < 3:
        raise ConfigError(f"a sequence needs at least 3 frames (got {frames})")
    rng = np.random.default_rng(seed)
    start, end = sample_scenes(1, rng, config), sample_scenes(1, rng, config)
    scene = start.take(np.zeros(frames, dtype=int))
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, frames))          # smooth start and stop
    limits = {"cx": 1.5, "cy": 1.0, "roll": np.radians(2.0), "scale": 0.03, "head_yaw": np.radians(4.0),
              "yaw": np.radians(6.0), "gain": 0.06, "grad": 0.002, "light": 0.8}
    moved = {}
    for name in _MOVING:
        a, b = getattr(start, name), getattr(end, name)
        delta = np.clip(b - a, -limits[name], limits[name])
        ramp_ = ramp.reshape((-1,) + (1,) * (a.ndim - 1))
        moved[name] = a + ramp_ * delta
    scene = replace(scene, **moved)
    down = np.full(frames, float(round(rng.uniform(*config.down_deg))), np.float32)
    noise = np.full(frames, float(config.noise[1]))                      # the noisiest camera of the range
    return _render_pairs(scene, down, noise, rng, config, rgb)
