"""The synthetic eye generator: seeded, geometrically right (the iris moves by R sin(angle)), mirrored, smooth video."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edgedeploy.errors import ConfigError
from edgedeploy.zoo.gaze import EyeConfig, make_pairs, make_sequence, render_eyes, sample_scenes


@pytest.fixture(scope="module")
def pairs():
    return make_pairs(32, seed=3)


def test_pairs_are_seeded_and_shaped(pairs):
    again = make_pairs(32, seed=3)
    other = make_pairs(32, seed=4)
    np.testing.assert_array_equal(pairs.inputs, again.inputs)
    np.testing.assert_array_equal(pairs.targets, again.targets)
    assert float(np.abs(pairs.inputs - other.inputs).mean()) > 5.0
    assert pairs.inputs.shape == (32, 4, 48, 64) and pairs.targets.shape == (32, 2, 48, 64)
    assert pairs.inputs.dtype == np.float32 and 0.0 <= pairs.inputs[:, [0, 2]].min() and pairs.inputs.max() <= 255.0
    assert set(np.unique(pairs.inputs[:, 1])) == set(np.unique(pairs.angle))      # the angle plane
    assert np.all((pairs.angle >= 8) & (pairs.angle <= 20)) and np.all(pairs.angle == np.round(pairs.angle))


def test_target_iris_is_raised_by_the_redirection_angle(pairs):
    dy = pairs.iris_in[..., 1] - pairs.iris_target[..., 1]                        # image y grows downwards
    expected = pairs.radius * np.sin(np.radians(pairs.angle))[:, None]
    assert np.all(dy > 0)
    np.testing.assert_allclose(dy, expected, rtol=0.05, atol=0.1)
    assert 2.0 < float(expected.mean()) < 6.0                                   # pixels on a 48x64 patch


def test_noise_is_on_the_input_only(pairs):
    noise = pairs.inputs[:, [0, 2]] - pairs.clean
    assert 0.4 < float(noise.std()) < 3.0
    assert float(np.abs(noise.mean())) < 0.2


def test_pupil_is_dark_and_eye_is_structured(pairs):
    for i in range(8):
        x, y = np.round(pairs.iris_target[i, 0]).astype(int)
        patch = pairs.targets[i, 0]
        pupil = patch[y - 2:y + 3, x - 2:x + 3].min()                         # beside a possible corneal highlight
        assert pupil < 0.3 * np.percentile(patch, 95), i
        assert patch.std() > 15.0


def test_right_eye_is_the_mirrored_left_eye():
    cfg = EyeConfig()
    scene = sample_scenes(4, np.random.default_rng(0), cfg)
    zero2 = np.zeros((4, 2))
    sym = replace(scene, yaw=np.zeros(4), roll=np.zeros(4), head_yaw=np.zeros(4), grad=zero2, light=zero2)
    left, _ = render_eyes(sym, np.full(4, 12.0), cfg)
    right, _ = render_eyes(sym.mirrored(), np.full(4, 12.0), cfg)
    np.testing.assert_allclose(right, left[:, :, ::-1], atol=1e-5)
    assert float(np.abs(left - left[:, :, ::-1]).mean()) > 0.01                 # one eye alone is not symmetric


def test_sequence_moves_slowly_with_fresh_noise():
    seq = make_sequence(24, seed=1)
    step = float(np.abs(np.diff(seq.clean, axis=0)).mean())
    jump = float(np.abs(make_pairs(2, seed=9).clean[0] - make_pairs(2, seed=10).clean[0]).mean())
    assert step < 1.5 and jump > 10 * step
    assert np.all(seq.angle == seq.angle[0])
    noise = seq.inputs[:, [0, 2]] - seq.clean
    assert float(np.abs(noise[1] - noise[0]).mean()) > 1.0                   # independent noise per frame


def test_config_is_validated():
    with pytest.raises(ConfigError, match="down_deg"):
        EyeConfig(down_deg=(20.0, 8.0))
    with pytest.raises(ConfigError, match="0..40"):
        EyeConfig(down_deg=(5.0, 60.0))
    with pytest.raises(ConfigError, match="too small"):
        EyeConfig(height=8)
    with pytest.raises(ConfigError, match="n >= 1"):
        make_pairs(0)
    with pytest.raises(ConfigError, match="3 frames"):
        make_sequence(2)
