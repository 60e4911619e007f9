"""Post-processing, COCO mAP (pycocotools vs faster-coco-eval), recall by distance, the Haar baseline, overlays."""
from __future__ import annotations

import numpy as np
import pytest

from edgedeploy.errors import ConfigError, ShapeError
from edgedeploy.zoo.headbody import (DecodeConfig, DetectionSet, Detections, EvalConfig, HaarConfig, ImageLabels,
                                     build, coco_map, decode, detection_overlays, draw_detections,
                                     evaluate_detections, generate_scenes, haar_detect, nms)
from edgedeploy.zoo.headbody.assets import portrait_frames


@pytest.fixture(scope="module")
def scenes():
    return generate_scenes(12, seed=21, progress=False)


def _noisy(data: DetectionSet, seed: int = 0) -> list[Detections]:
    """Detections derived from the labels: jittered boxes, misses, false alarms, scores tied to quality."""
    rng = np.random.default_rng(seed)
    out = []
    for lb in data.labels:
        keep = rng.random(len(lb)) > 0.2
        b = lb.boxes[keep].copy()
        jitter = rng.normal(0, 0.12, b.shape) * np.repeat(b[:, 2:], 2, axis=1)
        b += jitter
        score = np.clip(0.9 - np.abs(jitter).mean(1) / np.maximum(b[:, 2], 1) + rng.normal(0, 0.1, len(b)), 0.01, 1)
        fa = np.column_stack([rng.uniform(0, 1200, 5), rng.uniform(0, 300, 5), rng.uniform(8, 80, (5, 2))])
        boxes = np.concatenate([b, fa]).astype(np.float32)
        scores = np.concatenate([score, rng.uniform(0.05, 0.6, 5)]).astype(np.float32)
        labels = np.concatenate([lb.labels[keep], rng.integers(0, 2, 5)])
        out.append(Detections(boxes, scores, labels))
    return out


def test_nms_and_decode_numbers() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 5, 5]], np.float32)
    assert list(nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5)) == [0, 2]
    assert list(nms(boxes, np.array([0.5, 0.8, 0.7]), 0.5)) == [1, 2]
    out = np.full((1, 6, 8, 16), -10.0, np.float32)
    out[0, 0, 3, 5] = 2.0                      # one head peak (score sigmoid(2) = 0.881)
    out[0, 0, 3, 6] = 1.0                      # its neighbour: not a peak
    out[0, 2:, 3, 5] = np.log([2.0, 1.0, 3.0, 4.0])
    det = decode(out, DecodeConfig(score_threshold=0.1))[0]
    assert len(det) == 1 and det.labels[0] == 0 and det.scores[0] == pytest.approx(0.8808, abs=1e-4)
    cx, cy = 5.5 * 4, 3.5 * 4
    assert np.allclose(det.boxes[0], [cx - 8, cy - 4, 20, 20])
    assert det.to_dict()["detections"][0]["category"] == "head"
    with pytest.raises(ShapeError, match=r"\(N, 6, h, w\)"):
        decode(np.zeros((1, 5, 8, 8)))
    with pytest.raises(ConfigError):
        DecodeConfig(nms_iou=0.0)


def test_map_is_100_for_the_labels_and_backends_agree(scenes) -> None:
    perfect = [Detections(lb.boxes, np.linspace(1, 0.5, len(lb)).astype(np.float32), lb.labels) for lb in scenes.labels]
    for backend in ("pycocotools", "faster-coco-eval"):
        m = coco_map(scenes, perfect, backend)
        assert m["map50"] == pytest.approx(100.0) and m["map50_95"] == pytest.approx(100.0)
    noisy = _noisy(scenes)
    ref, fast = coco_map(scenes, noisy, "pycocotools"), coco_map(scenes, noisy, "faster-coco-eval")
    assert 20 < ref["map50"] < 95 and ref["map50_95"] < ref["map50"]          # a realistic, imperfect detector
    for key in ("map50", "map50_95"):
        assert abs(ref[key] - fast[key]) <= 0.1, (key, ref[key], fast[key])
        for cls in ("head", "body"):
            assert abs(ref["per_class"][cls][key] - fast["per_class"][cls][key]) <= 0.1
    empty = [Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))] * len(scenes)
    assert coco_map(scenes, empty)["map50"] == 0.0
    with pytest.raises(ConfigError, match="one per image"):
        coco_map(scenes, noisy[:3])


def test_recall_by_distance_counts_by_hand() -> None:
    boxes = np.array([[10, 10, 40, 40], [200, 20, 14, 16], [400, 30, 12, 14], [600, 10, 60, 200]], np.float32)
    lb = ImageLabels(boxes, np.array([0, 0, 0, 1]), np.array([4.0, 12.0, 19.0, 4.5], np.float32),
                     np.zeros(4, bool))
    data = DetectionSet([np.zeros((352, 1280), np.uint8)], [lb], ["a.png"])
    det = Detections(np.array([[12, 11, 40, 40], [201, 20, 14, 16], [400, 30, 12, 14], [600, 10, 60, 90]],
                              np.float32), np.array([0.9, 0.8, 0.2, 0.95], np.float32), np.array([0, 0, 0, 1]))
    ev = evaluate_detections([det], data, EvalConfig(recall_score=0.3))
    head, body = ev.recall_by_distance["head"], ev.recall_by_distance["body"]
    assert head["3-6 ft"] == 100 and head["10-15 ft"] == 100 and head["15-20 ft"] == 0   # last one: score 0.2
    assert np.isnan(head["6-10 ft"]) and ev.counts_by_distance["head"]["15-20 ft"] == 1
    assert body["3-6 ft"] == 0                                                        # IoU 0.45 < 0.5
    assert ev.to_dict()["images"] == 1 and "mAP@0.5" in str(ev) and "15-20 ft" in str(ev)
    with pytest.raises(ConfigError):
        EvalConfig(backend="torchmetrics")


def test_haar_cascades_find_a_real_face_and_score_on_scenes(scenes) -> None:
    pytest.importorskip("cv2")
    frame = portrait_frames()["astronaut"]
    photo = DetectionSet([frame], [ImageLabels.empty()], ["astronaut.png"])
    det, timing = haar_detect(photo, HaarConfig(upscale=1.0, bodies=False))
    heads = det[0].boxes[det[0].labels == 0]
    centres = heads[:, :2] + heads[:, 2:] / 2
    # Eileen Collins' face in skimage's astronaut, placed at x 464..816 of the 352 px tall frame
    assert any(560 < cx < 680 and 20 < cy < 140 for cx, cy in centres), heads
    assert timing["haar_ms"] > 0
    dets, _ = haar_detect(scenes.subset(range(3)))
    assert len(dets) == 3 and all(set(d.labels) <= {0, 1} for d in dets)
    ev = evaluate_detections(dets, scenes.subset(range(3)))
    assert 0 <= ev.per_class["head"]["map50"] <= 100
    with pytest.raises(ConfigError):
        HaarConfig(upscale=10)


def test_overlay_png(scenes) -> None:
    import cv2

    lb = scenes.labels[0]
    det = Detections(lb.boxes, np.where(lb.labels == 0, 0.95, 0.9).astype(np.float32), lb.labels)  # heads on top
    png = draw_detections(scenes.images[0], det, truth=lb)
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and img.shape == (352, 1280, 3)
    x, y, w, _ = lb.boxes[lb.labels == 0][0].round().astype(int)
    assert tuple(img[y, x + w // 2]) == (40, 40, 230)                 # a red head box edge
    small = cv2.imdecode(np.frombuffer(draw_detections(scenes.images[0], det), np.uint8), cv2.IMREAD_COLOR)
    assert small.shape == img.shape
    with pytest.raises(ShapeError):
        draw_detections(scenes.images[0].astype(np.float32), det)
    pngs = detection_overlays(build("hw-aware", widths=(8, 16, 16, 32)), scenes, n_scenes=2)
    assert list(pngs) == scenes.file_names[:2] + [f"photo_{n}.png" for n in ("astronaut", "grace_hopper", "camera",
                                                                            "gallery")]
    assert all(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR).shape == (352, 1280, 3)
               for b in pngs.values())
