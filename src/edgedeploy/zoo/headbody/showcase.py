"""What the report shows of a head/body run, computed by its evaluate step (the report only draws it).

* ``haar_reference``: the run's detector and OpenCV's Haar cascades (frontal face -> head, upper body -> body)
  scored on the same first held-out scenes (the cascades take about 2 s a frame, so not on all of them);
* ``choices``: the tutorial's "choices impact": MACs, params, memory traffic per frame at FP16 and the MyriadX
  latency estimate of the baseline, of each hardware-aware swap alone and of the hardware-aware variant
  (architectures untrained: costs do not depend on the weights);
* ``overlay_samples``: detections drawn on held-out scenes (labels in gray) and on real photos, as JPEG files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .data import DetectionSet

HAAR_SCENES = 8
OVERLAY_SCENES = 3


def haar_reference(model: Any, test_set: DetectionSet, n: int = HAAR_SCENES) -> dict[str, Any]:
    """Scores and ms/frame of the detector (``model``) and of the Haar cascades on the first ``n`` test scenes."""
    from .evaluate import evaluate, evaluate_detections
    from .haar import HaarConfig, haar_detect

    scenes = test_set.subset(range(min(n, len(test_set))))
    dets, timing = haar_detect(scenes, HaarConfig())
    ev = evaluate(model, scenes)
    return {"scenes": len(scenes), "haar": {**evaluate_detections(dets, scenes).row(), "ms": timing.get("haar_ms")},
            "model": {**ev.row(), "ms": ev.timing_ms.get("network_ms")}}


def choices(height: int, width: int) -> list[dict[str, Any]]:
    """MACs, params, traffic per frame at FP16 and the MyriadX estimate of each architecture choice."""
    import torch

    from ...metrics.profile import profile
    from ...targets.latency import estimate_latency
    from .model import SWAPS, HeadBodyConfig, HeadBodyNet

    configs = [("baseline", HeadBodyConfig.variant("baseline"))]
    configs += [(name, HeadBodyConfig.variant("baseline", **swap)) for name, swap in SWAPS.items()]
    configs.append(("hw-aware", HeadBodyConfig.variant("hw-aware")))
    out = []
    for name, cfg in configs:
        torch.manual_seed(0)
        prof = profile(HeadBodyNet(cfg).eval(), (1, 1, height, width), precision="fp16", fps=30)
        est = estimate_latency(prof, "myriadx", precision="fp16")
        out.append({"name": name, "macs": prof.macs, "params": prof.params, "traffic_bytes": prof.traffic_bytes,
                    "myriadx_ms": est.ms})
    return out


def overlay_samples(model: Any, test_set: DetectionSet, folder: Path, n: int = OVERLAY_SCENES) -> list[dict[str, str]]:
    """Overlays of the first ``n`` held-out scenes and of the real photos, written as JPEGs into ``folder``."""
    import cv2
    import numpy as np

    from ..._io import write_bytes_atomic
    from .overlay import detection_overlays

    shots = []
    for name, png in detection_overlays(model, test_set, n_scenes=n).items():
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        ok, jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        file = f"overlay_{Path(name).stem}.{'jpg' if ok else 'png'}"
        write_bytes_atomic(folder / file, jpg.tobytes() if ok else png)
        real = name.startswith("photo_")
        shots.append({"file": file, "caption": f"{Path(name).stem[6:] if real else Path(name).stem}: "
                      + ("real photo letterboxed into the camera frame" if real else "held-out scene, labels in gray")})
    return shots
