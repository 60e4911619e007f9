"""Real photos that ship offline: eyes found with OpenCV's cascades, corrected, pasted back (before/after)."""
from __future__ import annotations

import numpy as np
import pytest

from edgedeploy.errors import ConfigError, ShapeError
from edgedeploy.zoo.gaze import (GazeTrainConfig, LocalizeConfig, correct_photo, find_eyes, pretrained_gaze,
                                 sample_photos)

cv2 = pytest.importorskip("cv2")
pytest.importorskip("skimage")


@pytest.fixture(scope="module")
def photos():
    return sample_photos(lfw_faces=4)


@pytest.fixture(scope="module")
def corrector():
    return pretrained_gaze(GazeTrainConfig.quick(), progress=False)


def _inside(box, outer, slack=0.0):
    x, y, w, h = box
    ox, oy, ow, oh = outer
    return ox - slack <= x + w / 2 <= ox + ow + slack and oy - slack <= y + h / 2 <= oy + oh * 0.6


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_cascade_finds_one_face_and_its_two_eyes(photos, name):
    pairs = find_eyes(photos[name])
    assert len(pairs) == 1
    pair = pairs[0]
    assert pair.left[0] < pair.right[0]
    assert _inside(pair.left, pair.face) and _inside(pair.right, pair.face)
    ratio = pair.left[2] / pair.face[2]
    assert 0.2 < ratio < 0.5                             # a patch is about an eye and a half wide
    assert abs(pair.left[2] / pair.left[3] - 64 / 48) < 1e-6


def test_lfw_faces_are_found_after_upscaling(photos):
    found = sum(len(find_eyes(photos[f"lfw_{i}"])) == 1 for i in range(4))
    assert found >= 3


def test_correct_photo_changes_only_the_eyes_and_raises_the_gaze(photos, corrector):
    result = correct_photo(corrector, photos["astronaut"], angle=12, name="astronaut")
    assert result.after.shape == result.before.shape == (512, 512, 3) and result.after.dtype == np.uint8
    changed = np.abs(result.after.astype(int) - result.before.astype(int)).max(-1) > 2
    assert changed.sum() > 150
    allowed = np.zeros_like(changed)
    for x, y, w, h in (result.pairs[0].left, result.pairs[0].right):
        allowed[int(y) - 1:int(np.ceil(y + h)) + 1, int(x) - 1:int(np.ceil(x + w)) + 1] = True
    assert not (changed & ~allowed).any()
    field = result.fields[0]
    for eye in (0, 1):                                   # content near the eye centre is pulled up from below
        assert field[4 * eye + 1, 16:32, 20:44].mean() > 0.25      # pixels
    png = cv2.imdecode(np.frombuffer(result.png(), np.uint8), cv2.IMREAD_COLOR)
    assert png.shape == (512, 1024, 3)
    assert result.to_dict()["changed_pixels"] == int(changed.sum())


def test_every_sample_photo_gets_a_before_after(photos, corrector):
    results = [correct_photo(corrector, img, angle=10, name=n) for n, img in photos.items()]
    assert sum(bool(r.pairs) for r in results) >= 5 and all(r.png()[:4] == b"\x89PNG" for r in results)


def test_inputs_are_validated(photos, corrector):
    grey = cv2.cvtColor(photos["astronaut"], cv2.COLOR_RGB2GRAY)
    assert len(find_eyes(grey)) == 1
    with pytest.raises(ShapeError, match="RGB"):
        find_eyes(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(ConfigError, match="angle"):
        correct_photo(corrector, photos["astronaut"], angle=90)
    with pytest.raises(ConfigError, match="patch_width"):
        LocalizeConfig(patch_width=0)
