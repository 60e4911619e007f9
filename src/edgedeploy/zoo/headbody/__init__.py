"""Case study 1: the conference-room head/body detector (a 180-degree meeting camera, people 3-20 ft away).

* ``scenes``: seeded conference rooms with real faces and photos composited in, labelled head/body boxes;
* ``coco``: COCO JSON writing and loading (bring your own data), with one clear error per problem;
* ``model``: the detector in a baseline and a hardware-aware variant;
* ``train``: seeded CPU training, FP16-aware option; ``weights``: ``pretrained`` (weights cached by config hash)
  and the zoo factories (``zoo.create("headbody", variant=..., pretrained=...)``, ``headbody-hw``, ...);
* ``postprocess``: host-side decode + NMS; ``evaluate``: COCO mAP and recall by distance;
* ``tasks``: the recipe's dataset ``headbody`` and train/evaluate steps;
* ``haar``: OpenCV's Haar cascades as the outside reference; ``overlay``: boxes on frames as PNG bytes;
* ``oak``: the host script for an OAK camera (``oak_detect.py``, written next to the blob's DepthAI pipeline).
"""
from __future__ import annotations

from .coco import detections_to_coco, load_coco, save_coco, to_coco
from .data import CATEGORIES, DISTANCE_BINS_FT, DetectionSet, ImageLabels
from .evaluate import DetectionEval, EvalConfig, coco_map, evaluate, evaluate_detections, predict
from .haar import HaarConfig, calibrate_haar, haar_detect
from .model import INPUT_SHAPE, HeadBodyConfig, HeadBodyNet, build
from .oak import write_oak_host
from .overlay import OverlayConfig, detection_overlays, draw_detections
from .postprocess import DecodeConfig, Detections, decode, nms
from .weights import BUDGETS, headbody, heldout_scenes, load_detector, pretrained, save_detector
from .scenes import SceneConfig, generate_scenes, render_scene
from .train import TrainConfig, TrainResult, train_detector
from .tasks import SceneSplits, evaluate_task, scene_splits, train_task

__all__ = [
    "BUDGETS", "CATEGORIES", "DISTANCE_BINS_FT", "INPUT_SHAPE", "DecodeConfig", "DetectionEval", "DetectionSet",
    "Detections", "EvalConfig", "HaarConfig", "HeadBodyConfig", "HeadBodyNet", "ImageLabels", "OverlayConfig",
    "SceneConfig", "SceneSplits", "TrainConfig", "TrainResult", "build", "calibrate_haar", "coco_map", "decode",
    "detection_overlays", "detections_to_coco", "draw_detections", "evaluate", "evaluate_detections", "evaluate_task",
    "generate_scenes", "haar_detect", "headbody", "heldout_scenes", "load_coco", "load_detector", "nms", "predict",
    "pretrained", "render_scene", "save_coco", "save_detector", "scene_splits", "to_coco", "train_detector",
    "train_task", "write_oak_host",
]
