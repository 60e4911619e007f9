"""Real pixels the conference-room scenes are built from, all shipped inside installed packages (nothing downloaded).

* faces: scikit-image's ``lfw_subset`` (100 real 25x25 face crops from Labeled Faces in the Wild), split once into
  70 train and 30 test faces (seeded permutation) so a test scene never shows a face seen in training;
* non-faces: the 100 non-face 25x25 patches of the same set (wall posters and clutter: hard negatives);
* photos: scikit-image's bundled photos (astronaut, coffee, chelsea, rocket, camera, brick, grass, gravel, page,
  text, moon, coins, hubble_deep_field), matplotlib's ``grace_hopper.jpg`` and scikit-learn's ``china.jpg`` and
  ``flower.jpg``. Their roles in a scene: window views, framed pictures, slides on the wall screen, carpet, and
  clothing (the uniform and the space suit cropped from the two portraits below their faces are real clothing).

The two portraits (astronaut, grace_hopper) are kept whole for :func:`portrait_frames`: real people to run the
detector on, outside the generated scenes.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ...errors import ArtifactError

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "brick", "grass", "gravel", "page", "text",
                  "moon", "coins", "hubble_deep_field")
N_TEST_FACES = 30
# role -> photos used for it (names from photos()); portraits only contribute their clothing regions
WINDOW_VIEWS = ("china", "flower", "rocket", "coffee", "hubble_deep_field")
WALL_ART = ("coffee", "chelsea", "rocket", "china", "flower", "moon", "coins", "hubble_deep_field", "brick")
SLIDES = ("page", "text")
FLOORS = ("gravel", "grass", "brick")
CLOTHING = ("grace_hopper_uniform", "astronaut_suit", "coffee", "chelsea", "brick", "grass", "gravel", "coins",
            "rocket", "flower")


def _gray(img: np.ndarray) -> np.ndarray:
    """uint8/float image (H, W[, 3|4]) -> float32 luminance in [0, 1] (ITU-R 601 weights)."""
    x = np.asarray(img, dtype=np.float32)
    if x.max() > 1.0:
        x = x / 255.0
    if x.ndim == 3:
        x = x[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def _load(what: str, loader: object) -> np.ndarray:
    try:
        return _gray(loader())  # type: ignore[operator]
    except (OSError, ValueError, ImportError) as exc:
        raise ArtifactError(f"cannot load the bundled image {what} ({type(exc).__name__}: {exc}); "
                            "reinstall scikit-image, matplotlib and scikit-learn (pip install -e .[dev])") from exc


@lru_cache(maxsize=1)
def photos() -> dict[str, np.ndarray]:
    """Every bundled photo as float32 grayscale in [0, 1], by name (plus the two clothing crops)."""
    import os

    import matplotlib
    import skimage.data as skd
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = {name: _load(f"skimage.data.{name}", getattr(skd, name)) for name in SKIMAGE_PHOTOS}
    hopper = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    out["grace_hopper"] = _load(hopper, lambda: np.asarray(Image.open(hopper).convert("L")))
    sample = load_sample_images()
    for fname, img in zip(sample.filenames, sample.images):
        out[os.path.splitext(os.path.basename(fname))[0]] = _gray(img)
    gh, ast = out["grace_hopper"], out["astronaut"]
    out["grace_hopper_uniform"] = gh[int(0.62 * gh.shape[0]):, int(0.05 * gh.shape[1]):int(0.95 * gh.shape[1])]
    out["astronaut_suit"] = ast[int(0.55 * ast.shape[0]):, int(0.05 * ast.shape[1]):int(0.55 * ast.shape[1])]
    return out


@lru_cache(maxsize=1)
def _lfw() -> np.ndarray:
    import skimage.data as skd

    try:
        return np.asarray(skd.lfw_subset(), dtype=np.float32).reshape(-1, 25, 25)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot load skimage.data.lfw_subset ({exc}); reinstall scikit-image") from exc


def faces(split: str) -> np.ndarray:
    """LFW face crops (N, 25, 25) float32 in [0, 1]: ``"train"`` (70) or ``"test"`` (30), disjoint, fixed split."""
    if split not in ("train", "test"):
        from ...errors import ConfigError

        raise ConfigError(f"face split must be 'train' or 'test', got {split!r}")
    lfw = _lfw()[:100]
    order = np.random.default_rng(20240617).permutation(len(lfw))
    idx = order[:N_TEST_FACES] if split == "test" else order[N_TEST_FACES:]
    return lfw[np.sort(idx)]


def non_faces() -> np.ndarray:
    """The 100 non-face 25x25 patches of ``lfw_subset`` (float32 in [0, 1])."""
    return _lfw()[100:]


def texture_patch(rng: np.random.Generator, names: tuple[str, ...], h: int, w: int, contrast: float = 1.0,
                  mean: float | None = None) -> np.ndarray:
    """A random crop of one of the named photos, resized to (h, w), with its contrast and mean set."""
    import cv2

    img = photos()[names[int(rng.integers(len(names)))]]
    ih, iw = img.shape
    frac = rng.uniform(0.25, 0.9)
    ch, cw = max(4, int(ih * frac)), max(4, int(iw * frac * rng.uniform(0.6, 1.0)))
    y0, x0 = int(rng.integers(0, ih - ch + 1)), int(rng.integers(0, iw - cw + 1))
    crop = img[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    out = cv2.resize(np.ascontiguousarray(crop), (max(w, 1), max(h, 1)), interpolation=cv2.INTER_AREA)
    m = float(out.mean())
    target = m if mean is None else mean
    return np.clip(target + (out - m) * contrast, 0.0, 1.0).astype(np.float32)


def portrait_frames(size: tuple[int, int] = (352, 1280)) -> dict[str, np.ndarray]:
    """Real photos of people as camera-size uint8 frames: each portrait alone and a 3-up 'video call' gallery."""
    import cv2

    h, w = size
    ph = photos()
    out: dict[str, np.ndarray] = {}
    for name in ("astronaut", "grace_hopper", "camera"):
        img = ph[name]
        scale = h / img.shape[0]
        pw = round(img.shape[1] * scale)
        frame = np.full((h, w), 0.35, np.float32)
        x0 = (w - pw) // 2
        frame[:, x0:x0 + pw] = cv2.resize(img, (pw, h), interpolation=cv2.INTER_AREA)
        out[name] = (frame * 255 + 0.5).astype(np.uint8)
    gallery = np.full((h, w), 0.35, np.float32)
    for i, (name, ph_h) in enumerate((("astronaut", 300), ("grace_hopper", 200), ("camera", 120))):
        img = ph[name]
        pw = round(img.shape[1] * ph_h / img.shape[0])
        x0, y0 = 60 + i * 420, (h - ph_h) // 2
        gallery[y0:y0 + ph_h, x0:x0 + pw] = cv2.resize(img, (pw, ph_h), interpolation=cv2.INTER_AREA)
    out["gallery"] = (gallery * 255 + 0.5).astype(np.uint8)
    return out
