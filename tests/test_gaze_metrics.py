"""Gaze metrics on held-out data: SSIM against scikit-image, iris error geometry, and temporal flicker."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgedeploy.errors import ConfigError, ShapeError
from edgedeploy.zoo.gaze import (GazeTrainConfig, corrected_iris, evaluate_gaze, make_pairs, make_sequence,
                                 pretrained_gaze, ssim, temporal_flicker)


@pytest.fixture(scope="module")
def corrector():
    """The quick recipe (~30 s of training on one core the first time, then cached)."""
    return pretrained_gaze(GazeTrainConfig.quick(), progress=False)


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    pairs = make_pairs(6, seed=1)
    mine = ssim(torch.from_numpy(pairs.inputs[:, [0]]), torch.from_numpy(pairs.targets[:, [0]])).numpy()
    ref = [metrics.structural_similarity(pairs.inputs[i, 0].astype(np.float64), pairs.targets[i, 0].astype(np.float64),
                                         data_range=255, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False) for i in range(6)]
    np.testing.assert_allclose(mine, ref, atol=1e-4)
    same = torch.from_numpy(pairs.targets[:, [0]])
    np.testing.assert_allclose(ssim(same, same).numpy(), 1.0, atol=1e-5)
    with pytest.raises(ShapeError):
        ssim(same, same[:, :, :10])


def test_corrected_iris_follows_a_known_flow():
    fields = torch.zeros(2, 8, 48, 64)
    fields[:, 1] = 3.0                     # left eye: output pixel p samples p + (0, 3): content moves up 3 px
    fields[:, 4] = -1.5                    # right eye: samples p - (1.5, 0): content moves right 1.5 px
    iris = np.array([[[30.0, 28.0], [33.3, 25.6]], [[20.5, 30.25], [40.0, 20.0]]], np.float32)
    got = corrected_iris(fields, iris)
    np.testing.assert_allclose(got[:, 0], iris[:, 0] - [0.0, 3.0], atol=1e-4)
    np.testing.assert_allclose(got[:, 1], iris[:, 1] + [1.5, 0.0], atol=1e-4)


def test_corrector_beats_the_identity_warp_on_held_out_pairs(corrector):
    result = evaluate_gaze(corrector, make_pairs(96, seed=1000))
    base, mine = result.identity, result.model
    assert base.iris_deg > 10.0 and mine.iris_deg < 0.2 * base.iris_deg      # ~14 deg -> ~1.3 deg
    assert mine.iris_px < 0.2 * base.iris_px
    assert mine.l1 < 0.45 * base.l1 and mine.ssim > base.ssim + 0.2
    assert result.samples == 96 and set(result.to_dict()) == {"model", "identity", "samples"}


def test_temporal_smoothing_halves_the_flicker(corrector):
    for seed in (0, 1):
        result = temporal_flicker(corrector, make_sequence(40, seed=seed), alpha=0.3)
        assert result.reduction_pct >= 50.0, result
        assert result.l1_smoothed < 1.05 * result.l1_per_frame            # no visible lag on a slow video
        assert result.output_flicker_per_frame < result.output_flicker_identity
    with pytest.raises(ConfigError, match="3 frames"):
        temporal_flicker(corrector, make_pairs(2, seed=0))
    with pytest.raises(ConfigError, match="alpha"):
        temporal_flicker(corrector, make_sequence(5, seed=0), alpha=1.5)
