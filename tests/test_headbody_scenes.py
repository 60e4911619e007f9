"""The conference-room scene generator: real pixels, geometry (3-20 ft, far heads small), occlusion, determinism."""
from __future__ import annotations

import numpy as np
import pytest

from edgedeploy.errors import ConfigError
from edgedeploy.zoo.headbody import SceneConfig, generate_scenes, render_scene
from edgedeploy.zoo.headbody import assets
from edgedeploy.zoo.headbody.camera import WideCamera


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes(24, seed=3, progress=False)


def test_real_faces_split_disjoint_and_photos_bundled() -> None:
    train, test = assets.faces("train"), assets.faces("test")
    assert train.shape == (70, 25, 25) and test.shape == (30, 25, 25)
    flat_train = {t.tobytes() for t in train}
    assert not any(t.tobytes() in flat_train for t in test)          # no test face was seen in training
    assert all(f.std() > 0.05 for f in np.concatenate([train, test]))  # real crops, not blanks
    photos = assets.photos()
    for name, shape in (("astronaut", (512, 512)), ("grace_hopper", (600, 512)), ("china", (427, 640)),
                        ("flower", (427, 640)), ("coffee", (400, 600)), ("chelsea", (300, 451))):
        assert photos[name].shape == shape and photos[name].dtype == np.float32
        assert 0.05 < photos[name].std() and 0 <= photos[name].min() and photos[name].max() <= 1
    for role in (assets.WINDOW_VIEWS, assets.WALL_ART, assets.SLIDES, assets.FLOORS, assets.CLOTHING):
        assert set(role) <= set(photos)
    frames = assets.portrait_frames()
    assert set(frames) == {"astronaut", "grace_hopper", "camera", "gallery"}
    assert all(f.shape == (352, 1280) and f.dtype == np.uint8 for f in frames.values())
    with pytest.raises(ConfigError, match="train' or 'test"):
        assets.faces("val")


def test_wide_camera_projection_inverts_its_rays() -> None:
    for k1, tilt in ((0.0, 0.0), (0.04, -6.0), (-0.03, -2.0)):
        cam = WideCamera(k1=k1, tilt_deg=tilt, height_ft=4.2)
        rays = cam.rays()
        rng = np.random.default_rng(0)
        vs, us = rng.integers(0, cam.height, 50), rng.integers(0, cam.width, 50)
        pts = np.array([0.0, cam.height_ft, 0.0]) + rays[vs, us].astype(np.float64) * 7.5
        uv = cam.project(pts)
        assert np.abs(uv - np.stack([us, vs], 1)).max() < 0.02          # pixel centres come back to themselves
    cam = WideCamera()
    left, right = cam.project(np.array([[-10.0, 4.0, 1e-6], [10.0, 4.0, 1e-6]]))
    assert left[0] < 1 and right[0] > cam.width - 2                        # 180 degrees span the whole width
    assert cam.scale_at(np.array([0.0, 4.0, 20.0]))[0] == pytest.approx(cam.focal / 20, rel=0.02)


def test_scenes_are_seeded_and_labelled(scenes) -> None:
    img, lb = render_scene(SceneConfig(), 1234)
    img2, lb2 = render_scene(SceneConfig(), 1234)
    assert np.array_equal(img, img2) and np.array_equal(lb.boxes, lb2.boxes)
    assert not np.array_equal(img, render_scene(SceneConfig(), 1235)[0])
    assert img.shape == (352, 1280) and img.dtype == np.uint8
    counts = scenes.counts()
    assert counts["images"] == 24 and counts["heads"] >= 100 and counts["bodys"] >= 80
    all_boxes = np.concatenate([lb.boxes for lb in scenes.labels])
    assert (all_boxes[:, :2] >= 0).all() and (all_boxes[:, 0] + all_boxes[:, 2] <= 1280).all()
    assert (all_boxes[:, 1] + all_boxes[:, 3] <= 352).all() and (all_boxes[:, 2:] >= 1).all()
    dists = np.concatenate([lb.distances for lb in scenes.labels])
    assert dists.min() >= 3.0 and dists.max() <= 20.0 and (dists < 6).any() and (dists > 15).any()
    # occlusion by the table and by each other: some people are mostly hidden (ignored), most are not
    crowd = np.concatenate([lb.crowd for lb in scenes.labels])
    assert 0.02 < crowd.mean() < 0.3
    assert len({float(im.mean()) for im in scenes.images}) == 24        # lighting differs scene to scene


def test_far_heads_are_a_few_pixels(scenes) -> None:
    widths = {"near": [], "far": []}
    for lb in scenes.labels:
        for (x, y, w, h), cls, d, crowd in zip(lb.boxes, lb.labels, lb.distances, lb.crowd):
            if cls == 0 and not crowd:
                if d < 6:
                    widths["near"].append(w)
                elif d > 15:
                    widths["far"].append(w)
    # 180 degrees over 1280 px: a 0.6 ft head at 17 ft spans ~2 degrees, ~14 px; at 4 ft about 4x that
    assert np.median(widths["far"]) < 18 and np.median(widths["near"]) > 3 * np.median(widths["far"])


def test_scene_config_validation() -> None:
    for bad in ({"faces": "all"}, {"height": 350}, {"min_range_ft": 25}, {"fov_deg": 360},
                {"exposure": (2.0, 1.0)}, {"max_people": 0}):
        with pytest.raises(ConfigError):
            SceneConfig(**bad)
    with pytest.raises(ConfigError, match="int >= 1"):
        generate_scenes(0)
    test = generate_scenes(2, SceneConfig(faces="test"), seed=3, progress=False)
    assert not np.array_equal(test.images[0], generate_scenes(1, seed=3, progress=False).images[0])
