"""COCO JSON for head/body data: write generated scenes, load users' own (an images folder + one JSON file).

Layout (the standard COCO detection format): ``images`` (id, file_name, width, height), ``annotations`` (id,
image_id, category_id, bbox [x, y, w, h] in pixels, area, iscrowd; optional ``distance_ft``), ``categories``
(id, name). Category names map to our two classes by ``category_map`` (default: head -> head, body / person /
visible body / full body -> body), so CrowdHuman-style files converted to COCO load as they are.

Every problem in a user's file is one ``ArtifactError`` line naming the file, the image or annotation at fault and
the fix: unreadable JSON, missing keys, missing image files, boxes outside their image, unknown category ids,
categories that are neither head nor body, an empty dataset.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import write_bytes_atomic, write_json_atomic
from ...errors import ArtifactError
from .data import CATEGORIES, DetectionSet, ImageLabels, letterbox
from .postprocess import Detections

DEFAULT_CATEGORY_MAP = {"head": "head", "body": "body", "person": "body", "visible body": "body",
                        "full body": "body", "pedestrian": "body"}
BOX_TOLERANCE_PX = 1.0


def to_coco(data: DetectionSet) -> dict[str, Any]:
    """The dataset as a COCO dict (image ids 1..N, category ids 1 = head, 2 = body)."""
    images, anns = [], []
    for i, (name, img, lb) in enumerate(zip(data.file_names, data.images, data.labels), start=1):
        images.append({"id": i, "file_name": name, "height": int(img.shape[0]), "width": int(img.shape[1])})
        for box, cls, dist, crowd in zip(lb.boxes, lb.labels, lb.distances, lb.crowd):
            x, y, w, h = (round(float(v), 2) for v in box)
            ann = {"id": len(anns) + 1, "image_id": i, "category_id": int(cls) + 1, "bbox": [x, y, w, h],
                   "area": round(w * h, 2), "iscrowd": int(crowd)}
            if not math.isnan(float(dist)):
                ann["distance_ft"] = round(float(dist), 2)
            anns.append(ann)
    cats = [{"id": k + 1, "name": name, "supercategory": "person"} for k, name in enumerate(CATEGORIES)]
    return {"info": {"description": "edgedeploy head/body", **{k: v for k, v in data.meta.items() if k != "config"}},
            "images": images, "annotations": anns, "categories": cats}


def detections_to_coco(detections: list[Detections]) -> list[dict[str, Any]]:
    """Detections (one per image, in dataset order) as a COCO results list (image ids 1..N)."""
    out = []
    for i, det in enumerate(detections, start=1):
        for box, score, cls in zip(det.boxes, det.scores, det.labels):
            out.append({"image_id": i, "category_id": int(cls) + 1, "bbox": [float(v) for v in box],
                        "score": float(score)})
    return out


def save_coco(data: DetectionSet, folder: str | os.PathLike[str], json_name: str = "annotations.json") -> Path:
    """Write ``folder/images/<file_name>`` PNGs and ``folder/<json_name>`` (atomically); return the JSON path."""
    import cv2

    folder = Path(folder)
    for name, img in zip(data.file_names, data.images):
        ok, buf = cv2.imencode(".png", img)
        if not ok:
            raise ArtifactError(f"cannot encode image {name} as PNG")
        write_bytes_atomic(folder / "images" / name, buf.tobytes())
    return write_json_atomic(folder / json_name, to_coco(data))


def _fail(path: Path, what: str, fix: str) -> ArtifactError:
    return ArtifactError(f"{path}: {what}; {fix}")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ArtifactError(f"COCO file {path} does not exist; pass the path of the annotations JSON")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"is not valid JSON ({exc})", "export it again as COCO JSON") from exc
    if not isinstance(doc, dict):
        raise _fail(path, "is not a COCO object (expected {\"images\": ..., \"annotations\": ..., "
                          "\"categories\": ...})", "check the file is a COCO detection file")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(doc.get(k), list)]
    if missing:
        raise _fail(path, f"has no {', '.join(repr(m) for m in missing)} list", "add it (COCO detection layout)")
    return doc


def _classes(path: Path, doc: dict[str, Any], category_map: dict[str, str]) -> dict[int, int | None]:
    """category id -> class index (None for categories with no annotations that are neither head nor body)."""
    used = {a.get("category_id") for a in doc["annotations"] if isinstance(a, dict)}
    out: dict[int, int | None] = {}
    for cat in doc["categories"]:
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise _fail(path, f"category entry {cat!r} lacks an 'id' or 'name'", "give every category both")
        target = category_map.get(str(cat["name"]).strip().lower())
        if target is None and cat["id"] in used:
            raise _fail(path, f"category {cat['name']!r} (id {cat['id']}) is neither head nor body",
                        f"pass category_map={{{str(cat['name']).lower()!r}: 'head' or 'body'}} or drop its boxes")
        out[cat["id"]] = None if target is None else CATEGORIES.index(target)
    return out


def _read_image(path: Path, file: Path, image_id: Any, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as im:
            arr = np.asarray(im.convert("L"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise _fail(path, f"image {file.name} (id {image_id}) cannot be read ({type(exc).__name__})",
                    "replace the file or remove the image from the JSON") from exc
    if arr.shape != size:
        raise _fail(path, f"image {file.name} (id {image_id}) is {arr.shape[1]}x{arr.shape[0]} but the JSON says "
                          f"{size[1]}x{size[0]}", "fix its width/height in the JSON")
    return arr


def load_coco(json_path: str | os.PathLike[str], images_dir: str | os.PathLike[str] | None = None,
              size: tuple[int, int] | None = None, category_map: dict[str, str] | None = None) -> DetectionSet:
    """Load a COCO head/body file and its images (grayscale); ``size`` = (H, W) letterboxes every frame to the
    detector's input. ``images_dir`` defaults to ``<json folder>/images`` (or the JSON's folder)."""
    path = Path(json_path)
    doc = _read_json(path)
    cmap = {k.lower(): v for k, v in (category_map or DEFAULT_CATEGORY_MAP).items()}
    bad_targets = sorted({v for v in cmap.values() if v not in CATEGORIES})
    if bad_targets:
        raise ArtifactError(f"category_map targets {bad_targets} are not classes; map names to 'head' or 'body'")
    if not doc["images"]:
        raise _fail(path, "has no images (empty dataset)", "add images and their boxes, or check you passed the "
                                                           "right file")
    folder = Path(images_dir) if images_dir is not None else (
        path.parent / "images" if (path.parent / "images").is_dir() else path.parent)
    classes = _classes(path, doc, cmap)
    images: dict[Any, dict[str, Any]] = {}
    for im in doc["images"]:
        if not isinstance(im, dict) or not {"id", "file_name", "width", "height"} <= set(im):
            raise _fail(path, f"image entry {str(im)[:80]} lacks id, file_name, width or height", "add them")
        if im["id"] in images:
            raise _fail(path, f"image id {im['id']} appears twice", "give every image a unique id")
        images[im["id"]] = im
    missing = [im["file_name"] for im in images.values() if not (folder / im["file_name"]).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise _fail(path, f"{len(missing)} of {len(images)} image files are missing from {folder} "
                          f"({', '.join(missing[:3])}{more})", "copy them there or pass images_dir=")
    per_image: dict[Any, list[tuple[list[float], int, float, bool]]] = {k: [] for k in images}
    n_boxes = 0
    for ann in doc["annotations"]:
        aid = ann.get("id", "?") if isinstance(ann, dict) else "?"
        if not isinstance(ann, dict) or ann.get("image_id") not in images:
            raise _fail(path, f"annotation {aid} refers to image id "
                              f"{ann.get('image_id') if isinstance(ann, dict) else '?'}, which is not in 'images'",
                        "fix its image_id or add the image")
        if ann.get("category_id") not in classes:
            raise _fail(path, f"annotation {aid} has unknown category id {ann.get('category_id')!r} "
                              f"(categories: {sorted(classes)})", "use a listed id or add the category")
        cls = classes[ann["category_id"]]
        box = ann.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            raise _fail(path, f"annotation {aid} has bbox {box!r}", "use [x, y, width, height] in pixels")
        im = images[ann["image_id"]]
        x, y, w, h = (float(v) for v in box)
        t = BOX_TOLERANCE_PX
        if w <= 0 or h <= 0 or x < -t or y < -t or x + w > im["width"] + t or y + h > im["height"] + t:
            raise _fail(path, f"annotation {aid} box [{x:g}, {y:g}, {w:g}, {h:g}] lies outside its image "
                              f"{im['file_name']} ({im['width']}x{im['height']}) or is empty",
                        "clip boxes to the image and check they are [x, y, width, height], not corners")
        if cls is None:
            continue
        dist = float(ann.get("distance_ft", float("nan")))
        per_image[ann["image_id"]].append(([max(x, 0.0), max(y, 0.0), min(w, im["width"] - max(x, 0.0)),
                                            min(h, im["height"] - max(y, 0.0))], cls, dist, bool(ann.get("iscrowd"))))
        n_boxes += 1
    if n_boxes == 0:
        raise _fail(path, f"has {len(images)} images but no head or body boxes (empty dataset)",
                    "add annotations, or map your category names with category_map=")
    frames, labels, names = [], [], []
    for iid, im in images.items():
        img = _read_image(path, folder / im["file_name"], iid, (int(im["height"]), int(im["width"])))
        rows = per_image[iid]
        lb = ImageLabels(np.array([r[0] for r in rows], np.float32).reshape(-1, 4), np.array([r[1] for r in rows],
                         np.int64), np.array([r[2] for r in rows], np.float32), np.array([r[3] for r in rows], bool))
        if size is not None:
            img, lb = letterbox(img, lb, size)
        frames.append(img)
        labels.append(lb)
        names.append(str(im["file_name"]))
    return DetectionSet(frames, labels, names, {"source": str(path)})
