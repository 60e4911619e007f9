"""Case study 2: gaze correction by warping (DeepWarp / ECC-Net style), deployed to a MyriadX camera.

``create("gaze", pretrained=True)`` gives a ``GazeCorrector`` trained here on seeded synthetic eye pairs
(cached under $EDGEDEPLOY_CACHE/zoo or ~/.cache/edgedeploy/zoo, keyed by a hash of the training recipe).
"""
from __future__ import annotations

from ..registry import register_model
from .eyes import EyeConfig, EyeScene, GazePairs, make_pairs, make_sequence, render_eyes, sample_scenes
from .localize import CorrectedPhoto, EyePair, LocalizeConfig, correct_photo, find_eyes, sample_photos
from .metrics import (FlickerResult, GazeEvaluation, GazeScores, corrected_iris, evaluate_gaze, ssim,
                      temporal_flicker)
from .model import (PATCH, EyeWarpNet, FieldSmoother, GazeCorrector, GazeNetConfig, apply_field, mirror_net,
                    sampling_grid)
from .task import GazeSplits, gaze_data
from .train import GazeTrainConfig, GazeTrainResult, cache_dir, pretrained_gaze, train_gaze

__all__ = [
    "PATCH", "CorrectedPhoto", "EyePair", "LocalizeConfig", "correct_photo", "find_eyes", "sample_photos",
    "EyeConfig", "EyeScene", "EyeWarpNet", "FieldSmoother", "FlickerResult", "GazeCorrector",
    "GazeEvaluation", "GazeNetConfig", "GazePairs", "GazeSplits", "gaze_data", "GazeScores", "GazeTrainConfig", "GazeTrainResult",
    "apply_field", "cache_dir", "corrected_iris", "evaluate_gaze", "gaze", "make_pairs", "make_sequence",
    "mirror_net", "pretrained_gaze", "render_eyes", "sample_scenes", "sampling_grid", "ssim", "temporal_flicker",
    "train_gaze",
]


@register_model("gaze")
def gaze(pretrained: bool = False, config: GazeTrainConfig | None = None, progress: bool = True) -> GazeCorrector:
    """Left/right-eye warp + brightness corrector (input (N, 4, 48, 64), output (N, 2, 48, 64)).

    ``pretrained=True`` trains it here (seeded, ~1-2 min on one core) on the first call and caches the
    weights atomically; later calls load them. ``config`` changes the recipe (and the cache key)."""
    if pretrained:
        return pretrained_gaze(config, progress=progress)
    net_config = config.net if config is not None else GazeNetConfig()
    return GazeCorrector(EyeWarpNet(net_config)).eval()
