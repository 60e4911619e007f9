"""The head/body detector on a Luxonis OAK: the host files that go with its DepthAI pipeline.

``write_oak_host(blob)`` writes, next to a compiled blob that already has the generic ``run_on_oak.py`` /
``run_on_oak.json`` beside it (``edgedeploy.export.depthai.build_depthai_pipeline`` writes those):

* ``detect_on_oak.py``: ``oak_detect.py`` of this package, verbatim: frames from the OAK's camera, a camera index, a
  video, images or an image folder, U8 1x352x1280 grayscale into the blob, decode + NMS, boxes drawn;
* ``headbody_postprocess.py``: ``postprocess.py`` verbatim, imported only when edgedeploy is not installed on the
  camera host (with edgedeploy the script uses the package's own decode), so both paths decode identically;
* ``detect_on_oak.json``: the decode settings (score threshold, NMS IoU, stride), the output's name, class names.

Why copies and not a dependency: a camera host (a Raspberry Pi next to the OAK) should not need torch to draw boxes;
why verbatim: one source of truth, checked byte for byte by the tests. ``HeadBodyNet.write_depthai_host`` calls
this, which is how ``export(..., to=[..., "blob", "depthai"])`` finds it.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from ..._io import write_bytes_atomic, write_json_atomic
from ...errors import ArtifactError, ShapeError
from .data import CATEGORIES
from .postprocess import DecodeConfig

HOST_SCRIPT = "detect_on_oak.py"
POSTPROCESS_COPY = "headbody_postprocess.py"
SETTINGS = "detect_on_oak.json"
SCRIPT_SOURCE = Path(__file__).with_name("oak_detect.py")   # a script, not a module of this package: it imports
                                                             # run_on_oak.py and reads detect_on_oak.json beside it


def write_oak_host(blob: str | os.PathLike[str], decode: DecodeConfig | None = None,
                   draw_threshold: float = 0.3) -> tuple[Path, ...]:
    """Write the detector's host script, its settings and the post-processing copy next to ``blob``."""
    from . import postprocess

    blob = Path(blob)
    generic = blob.with_name("run_on_oak.json")
    if not generic.is_file() or not blob.with_name("run_on_oak.py").is_file():
        raise ArtifactError(f"{blob.parent} has no run_on_oak.py / run_on_oak.json; build the pipeline first "
                            "(edgedeploy.export.depthai.build_depthai_pipeline(blob))")
    pipeline = json.loads(generic.read_text())
    outputs = pipeline["outputs"]
    maps = {n: s for n, s in outputs.items() if len(s) == 4 and s[1] == len(CATEGORIES) + 4}
    if len(maps) != 1:
        raise ShapeError(f"{blob.name} outputs {outputs}: the head/body host script decodes one (1, "
                         f"{len(CATEGORIES) + 4}, h, w) map; export the detector itself, not a cut of it")
    (name, shape), = maps.items()
    if not 0 <= draw_threshold < 1:
        raise ShapeError(f"draw_threshold must be in [0, 1) (got {draw_threshold})")
    cfg = decode or DecodeConfig(stride=blob_stride(blob, pipeline["height"], shape))
    settings = write_json_atomic(blob.with_name(SETTINGS), {
        "decode": asdict(cfg), "draw_threshold": draw_threshold, "categories": list(CATEGORIES), "output": name})
    script = write_bytes_atomic(blob.with_name(HOST_SCRIPT), SCRIPT_SOURCE.read_bytes())
    copy = write_bytes_atomic(blob.with_name(POSTPROCESS_COPY), Path(postprocess.__file__).read_bytes())
    return script, settings, copy


def blob_stride(blob: Path, height: int, shape: list[int]) -> int:
    """The output stride: the blob's input ``height`` over its output map's height."""
    if height % shape[2]:
        raise ShapeError(f"{blob.name}: input height {height} is not a multiple of the output map's {shape[2]}")
    return height // shape[2]
