"""COCO JSON for head/body data: round trip of generated scenes, and one clear error line per bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgedeploy.errors import ArtifactError, EdgeDeployError
from edgedeploy.zoo.headbody import generate_scenes, load_coco, save_coco, to_coco


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    data = generate_scenes(3, seed=11, progress=False)
    folder = tmp_path_factory.mktemp("coco")
    return data, save_coco(data, folder)


def _write(tmp_path, doc, images=("a.png",), size=(40, 64)):
    import cv2

    (tmp_path / "images").mkdir(exist_ok=True)
    for name in images:
        cv2.imwrite(str(tmp_path / "images" / name), np.full(size, 90, np.uint8))
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))
    return path


def _doc(**over):
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 40}],
           "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [10, 5, 12, 14], "iscrowd": 0}],
           "categories": [{"id": 1, "name": "head"}, {"id": 2, "name": "person"}]}
    doc.update(over)
    return doc


def test_round_trip_keeps_pixels_boxes_and_distances(saved) -> None:
    data, path = saved
    doc = json.loads(path.read_text())
    assert [c["name"] for c in doc["categories"]] == ["head", "body"]
    assert len(doc["annotations"]) == sum(len(lb) for lb in data.labels)
    assert all("distance_ft" in a and a["iscrowd"] in (0, 1) for a in doc["annotations"])
    back = load_coco(path)
    assert back.file_names == data.file_names
    for a, b in zip(data.images, back.images):
        assert np.array_equal(a, b)                                   # PNG is lossless
    for a, b in zip(data.labels, back.labels):
        assert np.allclose(a.boxes, b.boxes, atol=0.01) and np.array_equal(a.labels, b.labels)
        assert np.allclose(a.distances, b.distances, atol=0.01) and np.array_equal(a.crowd, b.crowd)
    assert to_coco(back)["annotations"][0]["bbox"] == doc["annotations"][0]["bbox"]


def test_user_file_with_person_category_and_letterbox(tmp_path) -> None:
    doc = _doc()
    doc["annotations"].append({"id": 8, "image_id": 1, "category_id": 2, "bbox": [0, 0, 64, 40]})
    data = load_coco(_write(tmp_path, doc), size=(352, 1280))
    lb = data.labels[0]
    assert data.images[0].shape == (352, 1280) and list(lb.labels) == [0, 1]     # "person" -> body
    scale = 352 / 40                                                # height-limited letterbox, centred
    x0 = (1280 - round(64 * scale)) // 2
    assert np.allclose(lb.boxes[0], [x0 + 10 * scale, 5 * scale, 12 * scale, 14 * scale], atol=1e-3)
    assert np.isnan(lb.distances).all()


@pytest.mark.parametrize("case, match", [
    ("missing image", r"1 of 1 image files are missing .* \(a\.png\); copy them there or pass images_dir="),
    ("box outside", r"annotation 7 box \[50, 5, 30, 14\] lies outside its image a\.png \(64x40\)"),
    ("negative box", r"annotation 7 box \[10, 5, -3, 14\] .* is empty"),
    ("unknown category id", r"annotation 7 has unknown category id 9 \(categories: \[1, 2\]\)"),
    ("foreign category", r"category 'dog' \(id 3\) is neither head nor body; pass category_map="),
    ("no images", r"has no images \(empty dataset\)"),
    ("no boxes", r"has 1 images but no head or body boxes \(empty dataset\)"),
    ("bad json", r"is not valid JSON"),
    ("missing keys", r"has no 'annotations' list"),
    ("unknown image id", r"annotation 7 refers to image id 5, which is not in 'images'"),
    ("wrong size", r"image a\.png \(id 1\) is 64x40 but the JSON says 64x41"),
])
def test_bad_coco_files_fail_with_one_clear_line(tmp_path, case, match) -> None:
    doc = _doc()
    images = ("a.png",)
    ann = doc["annotations"][0]
    if case == "missing image":
        images = ()
    elif case == "box outside":
        ann["bbox"] = [50, 5, 30, 14]
    elif case == "negative box":
        ann["bbox"] = [10, 5, -3, 14]
    elif case == "unknown category id":
        ann["category_id"] = 9
    elif case == "foreign category":
        doc["categories"].append({"id": 3, "name": "dog"})
        ann["category_id"] = 3
    elif case == "no images":
        doc["images"], doc["annotations"] = [], []
    elif case == "no boxes":
        doc["annotations"] = []
    elif case == "missing keys":
        del doc["annotations"]
    elif case == "unknown image id":
        ann["image_id"] = 5
    elif case == "wrong size":
        doc["images"][0]["height"] = 41
    path = _write(tmp_path, doc, images)
    if case == "bad json":
        path.write_text("{not json")
    with pytest.raises(ArtifactError, match=match) as info:
        load_coco(path)
    assert isinstance(info.value, EdgeDeployError)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and ";" in msg      # one line: the file, what, the fix


def test_missing_json_file(tmp_path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        load_coco(tmp_path / "nope.json")
    with pytest.raises(ArtifactError, match="not classes"):
        load_coco(_write(tmp_path, _doc()), category_map={"head": "face"})


def test_users_coco_data_trains_and_evaluates(saved) -> None:
    import torch

    from edgedeploy.zoo.headbody import TrainConfig, build, evaluate, train_detector

    _, path = saved
    data = load_coco(path, size=(352, 1280))
    torch.manual_seed(0)
    model = build("hw-aware", widths=(8, 16, 16, 32))
    res = train_detector(model, data, TrainConfig(steps=3, batch_size=2, crop=(64, 96)), progress=False)
    assert len(res.losses) == 3 and all(np.isfinite(res.losses))
    ev = evaluate(model, data)
    assert ev.images == 3 and 0 <= ev.map50 <= 100 and set(ev.per_class) == {"head", "body"}
