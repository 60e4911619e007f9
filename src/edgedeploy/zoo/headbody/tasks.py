"""What a recipe needs to run the detector by name: the built-in dataset ``headbody`` (seeded train/test scenes),
the train step's loop and the evaluate step's metrics, registered with ``edgedeploy.data`` and ``edgedeploy.zoo``.

``data: headbody`` in a recipe gives :class:`SceneSplits`: the training scenes (what the train step learns from),
the held-out test scenes (test faces only: what evaluate scores) and, through the splits protocol every other
stage reads (``train`` / ``test``), the frames as (N, 1, H, W) float tensors in [0, 1] for calibration (a few
training frames) and evaluation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ..registry import register_task
from .data import DetectionSet
from .model import INPUT_SHAPE

DEMO_TRAIN_SCENES = 120          # the "demo" budget's training scenes (weights.BUDGETS)
DEMO_TEST_SCENES = 24
CALIBRATION_FRAMES = 8


@dataclass(frozen=True)
class SceneSplits:
    """Training and held-out scenes; ``train`` / ``test`` are their frames as (N, 1, H, W) float tensors in [0, 1]
    (``train``: the first ``calibration_frames`` frames only, what calibration reads)."""

    train_set: DetectionSet
    test_set: DetectionSet
    calibration_frames: int = CALIBRATION_FRAMES

    @property
    def train(self) -> Any:
        """Calibration frames: the first ``calibration_frames`` training frames (N, 1, H, W) in [0, 1]."""
        return self.train_set.tensor(range(min(self.calibration_frames, len(self.train_set))))

    @property
    def test(self) -> Any:
        """Every held-out frame (N, 1, H, W) in [0, 1]."""
        return self.test_set.tensor()

    def to_dict(self) -> dict[str, Any]:
        """Counts of both splits (JSON-ready)."""
        return {"train": self.train_set.counts(), "test": self.test_set.counts()}


@lru_cache(maxsize=2)
def _splits(n_train: int, n_test: int, height: int, width: int) -> SceneSplits:
    from .scenes import SceneConfig, generate_scenes
    from .weights import TEST_SCENE_SEED, TRAIN_SCENE_SEED

    train = generate_scenes(n_train, SceneConfig(height=height, width=width, faces="train"), seed=TRAIN_SCENE_SEED)
    test = generate_scenes(n_test, SceneConfig(height=height, width=width, faces="test"), seed=TEST_SCENE_SEED)
    return SceneSplits(train, test)


def scene_splits(shape: tuple[int, ...] = INPUT_SHAPE, n_train: int = DEMO_TRAIN_SCENES,
                 n_test: int = DEMO_TEST_SCENES) -> SceneSplits:
    """The built-in dataset ``headbody``: seeded conference-room scenes at the model's 1-channel input size
    (kept in memory for the next call in this process)."""
    if len(shape) != 4 or shape[1] != 1 or shape[2] % 32 or shape[3] % 32:
        raise ConfigError(f"the headbody dataset needs an Nx1xHxW grayscale input with H and W multiples of 32 "
                          f"(e.g. {'x'.join(map(str, INPUT_SHAPE))}); the model takes {'x'.join(map(str, shape))}")
    return _splits(n_train, n_test, int(shape[2]), int(shape[3]))


def train_task(model: Any, data: SceneSplits | None = None, epochs: float = 40, fp16_aware: bool = False,
               quick: bool = False, seed: int = 0) -> list[dict[str, float]]:
    """The recipe's train step: ``epochs`` passes of crops over the training scenes (40 x 120 scenes / 16 crops =
    the "demo" budget's 300 steps), the last 15% FP16-aware when asked; ``quick`` trains a quarter of that."""
    from .train import TrainConfig, train_detector

    if data is None:
        data = scene_splits()
    if not isinstance(data, SceneSplits):
        raise ConfigError("the head/body train step needs `data: headbody` (or a SceneSplits of your own scenes)")
    if not epochs > 0:
        raise ConfigError(f"train epochs must be > 0 (got {epochs!r})")
    batch = TrainConfig().batch_size
    steps = max(1, math.ceil(epochs * len(data.train_set) / batch) // (4 if quick else 1))
    cfg = TrainConfig(steps=steps, seed=seed, fp16_fraction=0.15 if fp16_aware else 0.0)
    result = train_detector(model, data.train_set, cfg)
    per_epoch = batch / len(data.train_set)
    return [{"epoch": round(r["step"] * per_epoch, 2), "loss": r["loss"], "heat": r["heat"],
             "box": r["box"]} for r in result.history]


def evaluate_task(model_or_artifact: Any, data: SceneSplits) -> dict[str, Any]:
    """The recipe's evaluate step: mAP@0.5 (all, head, body), mAP@[.5:.95], head recall at 15-20 ft (percent) and
    network time per frame of a torch detector or an exported ONNX / OpenVINO file on the held-out scenes, with the
    recall and object counts of every distance bin (what the report's detection section plots)."""
    from .evaluate import evaluate

    if not isinstance(data, SceneSplits):
        raise ConfigError("the head/body evaluate step needs `data: headbody` (or a SceneSplits of your own scenes)")
    model = model_or_artifact
    if isinstance(model, (str, Path)):
        from ...runtime import load

        model = load(Path(model), threads=1)
    return evaluate(model, data.test_set).row()


def samples_task(model: Any, folder: Path, data: SceneSplits) -> list[dict[str, str]]:
    """The evaluate step's pictures: detections on the first held-out scenes and on real photos (JPEG files)."""
    from .showcase import overlay_samples

    return overlay_samples(model, data.test_set, folder) if isinstance(data, SceneSplits) else []


def extras_task(model: Any, data: SceneSplits) -> dict[str, Any]:
    """The evaluate step's extras for the report: the Haar cascades on the first held-out scenes beside the
    detector, and the architecture choices' costs at the frames' size."""
    from .showcase import choices, haar_reference

    if not isinstance(data, SceneSplits):
        return {}
    height, width = data.test_set.images[0].shape[:2]
    return {"haar": haar_reference(model, data.test_set), "choices": choices(int(height), int(width))}


for _name in ("headbody", "headbody-baseline", "headbody-hw"):
    register_task(_name, trainer=train_task, evaluator=evaluate_task, samples=samples_task, extras=extras_task)
