"""The gaze case study as a recipe: the built-in dataset ``gaze`` (seeded eye pairs), its training loop and its
evaluator (L1 / SSIM to the true target, iris error, against the identity warp), for torch models and artifacts."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data import Splits
from ...errors import ConfigError, ShapeError
from ..registry import register_task
from .eyes import GazePairs, make_pairs
from .metrics import _scores, evaluate_gaze, ssim
from .model import PATCH, GazeCorrector, mirror_net
from .train import GazeTrainConfig, train_gaze

TRAIN_PAIRS, TEST_PAIRS = 512, 128


@dataclass(frozen=True)
class GazeSplits(Splits):
    """Eye pairs as splits: x (n, 4, 48, 64) model inputs, y (n, 2, 48, 64) true targets, with the geometry."""

    pairs_train: GazePairs | None = None
    pairs_test: GazePairs | None = None


def gaze_data(shape: tuple[int, ...] = (1, 4, *PATCH), train_pairs: int = TRAIN_PAIRS, test_pairs: int = TEST_PAIRS,
              seed: int = 0) -> GazeSplits:
    """Seeded train and test eye pairs (disjoint seeds) at the corrector's input (the built-in dataset ``gaze``)."""
    if tuple(shape[1:]) != (4, *PATCH):
        raise ShapeError(f"the gaze dataset makes Nx4x{PATCH[0]}x{PATCH[1]} eye pairs, but the model takes "
                         f"{'x'.join(map(str, shape))}; use input: 1x4x{PATCH[0]}x{PATCH[1]}")
    train, test = make_pairs(train_pairs, seed=seed), make_pairs(test_pairs, seed=seed + 1000)
    t = torch.from_numpy
    return GazeSplits(t(train.inputs), t(train.targets), t(test.inputs), t(test.targets), train, test)


def _train_task(model: GazeCorrector, data: GazeSplits | None = None, steps: int = 250, lr: float = 4e-3,
                batch_size: int = 32, smooth_weight: float = 0.05, seed: int = 0) -> list[dict[str, float]]:
    """The recipe's train step: trains the left network in place and rebuilds the right one as its mirror."""
    if not isinstance(model, GazeCorrector):
        raise ConfigError(f"the gaze training loop trains a GazeCorrector, not a {type(model).__name__}")
    data = data if isinstance(data, GazeSplits) else gaze_data(seed=seed)
    config = GazeTrainConfig(pairs=len(data.pairs_train), steps=steps, lr=lr, batch_size=batch_size,
                             smooth_weight=smooth_weight, seed=seed)
    result = train_gaze(config, train_data=data.pairs_train, net=model.left_model)
    model.right_model.load_state_dict(mirror_net(model.left_model).state_dict())
    window = max(1, min(50, steps // 4))
    return [{"step": float(min(steps, (i + 1) * window)), "loss": loss} for i, loss in enumerate(result.history)]


def _evaluate_task(model_or_artifact: Any, data: GazeSplits) -> dict[str, float]:
    """L1 and SSIM to the true targets (and the iris error for a torch model), with the identity warp's for scale."""
    pairs = data.pairs_test if isinstance(data, GazeSplits) else None
    if pairs is None:
        raise ConfigError("the gaze evaluator needs the built-in dataset: add `data: gaze` to the recipe")
    target = torch.from_numpy(pairs.targets)
    identity = _scores(torch.from_numpy(pairs.inputs[:, [0, 2]]), target, pairs.iris_in, pairs)
    if isinstance(model_or_artifact, torch.nn.Module):
        e = evaluate_gaze(model_or_artifact, pairs)
        return {"ssim": round(e.model.ssim, 4), "l1": round(e.model.l1, 3), "iris_deg": round(e.model.iris_deg, 3),
                "identity_ssim": round(identity.ssim, 4), "identity_l1": round(identity.l1, 3)}
    out = torch.from_numpy(_run_artifact(Path(model_or_artifact), pairs.inputs))
    return {"ssim": round(float(ssim(out, target).mean()), 4), "l1": round(float((out - target).abs().mean()), 3),
            "identity_ssim": round(identity.ssim, 4), "identity_l1": round(identity.l1, 3)}


def _run_artifact(path: Path, inputs: np.ndarray) -> np.ndarray:
    """Outputs of an ONNX / OpenVINO artifact, one pair at a time (exports have a fixed batch of 1)."""
    from ...runtime import load

    return load(path).run_rows(inputs).astype(np.float32)


def _samples(model: GazeCorrector, folder: Path, data: Any = None, angle: float = 10.0) -> list[dict[str, str]]:
    """Before | after of the real portraits that ship offline (faces cropped, 240 px high), as JPEGs in ``folder``."""
    import cv2

    from ..._io import write_bytes_atomic
    from .localize import correct_photo, sample_photos

    shots = []
    for name, image in sample_photos(lfw_faces=2).items():
        photo = correct_photo(model, image, angle=angle, name=name)
        if not photo.pairs:
            continue
        x0, y0 = min(p.face[0] for p in photo.pairs), min(p.face[1] for p in photo.pairs)
        x1 = max(p.face[0] + p.face[2] for p in photo.pairs)
        y1 = max(p.face[1] + p.face[3] for p in photo.pairs)
        h, w = photo.before.shape[:2]
        pad = (x1 - x0) // 5
        box = (slice(max(0, y0 - pad), min(h, y1 + pad)), slice(max(0, x0 - pad), min(w, x1 + pad)))
        pair = np.concatenate([photo.before[box], photo.after[box]], 1)
        scale = 240 / pair.shape[0]
        pair = cv2.resize(pair, (round(pair.shape[1] * scale), 240), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(pair, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok:
            write_bytes_atomic(folder / f"gaze_{name}.jpg", buf.tobytes())
            shots.append({"file": f"gaze_{name}.jpg", "caption": f"{name}: before | after ({angle:g} deg up, "
                                                                 f"{len(photo.pairs)} face(s), "
                                                                 f"{photo.changed_pixels} pixels changed)"})
    return shots


register_task("gaze", trainer=_train_task, evaluator=_evaluate_task, samples=_samples)

__all__ = ["GazeSplits", "gaze_data"]
