"""The tutorial's human / not-human task on real crops: scikit-image's ``lfw_subset`` (100 faces, 100 non-faces).

The 200 originals are split first (stratified, seeded) into train / held-out / test, then each split is
augmented on its own with flips and crops, so no view of a held-out or test image is ever trained on.
Held-out and test use 10 fixed views per image (whole + 4 corner crops, x 2 flips); train uses random crops and flips.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from ..data import Splits
from ..errors import ConfigError, ModelLoadError

CLASS_NAMES = ("NOT HUMAN", "HUMAN")


@dataclass(frozen=True)
class FaceCrops(Splits):
    """Augmented splits (N, 1, size, size) in [0, 1], labels 1 = HUMAN, a held-out split for choosing thresholds,
    and the originals' indices per split."""

    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    originals: dict[str, list[int]] = field(default_factory=dict)
    class_names: tuple[str, ...] = CLASS_NAMES

    @property
    def held_out(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The held-out split (choose thresholds on it) as an (x, y) pair."""
        return self.x_val, self.y_val


def _resize(crop: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(crop[None, None], size=(size, size), mode="bilinear", align_corners=False)[0]


def _fixed_views(img: torch.Tensor, size: int) -> list[torch.Tensor]:
    h = img.shape[-1]
    c = h - 3                                               # 22 of 25 pixels from each corner, and the whole crop
    crops = [img, img[:c, :c], img[:c, -c:], img[-c:, :c], img[-c:, -c:]]
    views = [_resize(v, size) for v in crops]
    return views + [v.flip(-1) for v in views]


def _random_views(img: torch.Tensor, size: int, n: int, gen: torch.Generator) -> list[torch.Tensor]:
    h = img.shape[-1]
    views = [_resize(img, size)]
    for _ in range(n - 1):
        c = int(torch.randint(h - 5, h + 1, (1,), generator=gen))
        top, left = (int(v) for v in torch.randint(0, h - c + 1, (2,), generator=gen))
        v = _resize(img[top:top + c, left:left + c], size)
        views.append(v.flip(-1) if bool(torch.rand(1, generator=gen) < 0.5) else v)
    return views


def load_face_crops(size: int = 32, train_views: int = 16, held_out: int = 20, test: int = 20,
                    seed: int = 0) -> FaceCrops:
    """Split lfw_subset's faces/non-faces (``held_out`` and ``test`` originals per class), then augment each split."""
    try:
        from skimage.data import lfw_subset
    except ImportError as exc:
        raise ModelLoadError("the face crops ship with scikit-image: pip install scikit-image") from exc
    if size < 8 or train_views < 1 or held_out < 1 or test < 1 or held_out + test >= 100:
        raise ConfigError(f"need size >= 8, train_views >= 1 and 1 <= held_out + test < 100 per class "
                          f"(got size={size}, train_views={train_views}, held_out={held_out}, test={test})")
    images = torch.tensor(lfw_subset(), dtype=torch.float32)        # 0-99 faces, 100-199 non-faces
    labels = torch.cat([torch.ones(100, dtype=torch.long), torch.zeros(100, dtype=torch.long)])
    gen = torch.Generator().manual_seed(seed)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for start in (0, 100):
        perm = (torch.randperm(100, generator=gen) + start).tolist()
        parts["test"] += perm[:test]
        parts["val"] += perm[test:test + held_out]
        parts["train"] += perm[test + held_out:]
    out = {}
    for split, ids in parts.items():
        xs, ys = [], []
        for i in ids:
            views = (_random_views(images[i], size, train_views, gen) if split == "train"
                     else _fixed_views(images[i], size))
            xs += views
            ys += [int(labels[i])] * len(views)
        out[split] = (torch.stack(xs), torch.tensor(ys, dtype=torch.long))
    return FaceCrops(*out["train"], *out["test"], *out["val"], originals={k: sorted(v) for k, v in parts.items()})
