"""The head/body detector on an OAK without the device: the real blob's DepthAI pipeline built with depthai 2.x, and
the host script (detect_on_oak.py) run end to end on frames through the exported IR / ONNX, its boxes equal to the
ones evaluation computes, with edgedeploy installed and with only the verbatim post-processing copy."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgedeploy.errors import ArtifactError, ConfigError, ShapeError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Three held-out scenes, and the same frames as PNG files in a folder (what the script reads)."""
    import cv2

    from edgedeploy.zoo.headbody import heldout_scenes

    scenes = heldout_scenes(3)
    folder = tmp_path_factory.mktemp("frames")
    for name, image in zip(scenes.file_names, scenes.images):
        cv2.imwrite(str(folder / Path(name).with_suffix(".png").name), image)
    return scenes, folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory, frames):
    """The hardware-aware detector exported as the recipe does: ONNX, U8 IR (scale 255 inside), U8 MyriadX blob and
    the DepthAI pipeline with its host scripts. Trained 40 steps on the test frames themselves (seeded, about 6 s):
    accuracy is not the point here, peaks of varied scores that decode into a mix of boxes are."""
    from edgedeploy.export.blob import BlobConfig
    from edgedeploy.export.openvino import OpenVinoConfig
    from edgedeploy.run.export import ExportConfig, export
    from edgedeploy.zoo.headbody import INPUT_SHAPE, TrainConfig, build, train_detector

    torch.manual_seed(0)
    model = build("hw-aware")
    train_detector(model, frames[0], TrainConfig(steps=40, warmup=5), progress=False)
    out = tmp_path_factory.mktemp("oak")
    cfg = ExportConfig(to=("onnx", "openvino", "blob", "depthai"),
                       openvino=OpenVinoConfig(input_type="u8", scale=[255.0]),
                       blob=BlobConfig(input_precision="U8", scale=255.0))
    results = {r.format: r for r in export(model.eval(), cfg, input_shape=INPUT_SHAPE, out=out, name="headbody")}
    return results, out


def _run_script(out: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, str(out / "detect_on_oak.py"), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})}, check=False)


def test_pipeline_around_the_real_blob(exported):
    from edgedeploy.zoo.headbody import postprocess
    from edgedeploy.zoo.headbody.oak import SCRIPT_SOURCE

    results, out = exported
    blob, dai = results["blob"].path, results["depthai"]
    assert dai.details["nodes"] == ["XLinkIn", "NeuralNetwork", "XLinkOut"] and dai.details["blob"] == blob.name
    assert dai.details["inputs"] == {"input": {"shape": [1, 1, 352, 1280], "dtype": "U8F"}}
    assert dai.details["outputs"]["output"]["shape"] == [1, 6, 88, 320]
    assert dai.details["host_script"] == "detect_on_oak.py"
    summary = json.loads(dai.path.read_text())
    nodes = {n[1]["name"]: n[1]["properties"] for n in summary["pipeline"]["nodes"]}
    assert nodes["XLinkIn"]["maxDataSize"] == 352 * 1280                 # one U8 grayscale frame per message
    assert nodes["NeuralNetwork"]["blobSize"] == blob.stat().st_size
    assert summary["assetStorage"] == {"bytes": blob.stat().st_size,
                                       "sha256": hashlib.sha256(blob.read_bytes()).hexdigest()}
    assert {p.name for p in dai.files} == {"headbody.depthai.json", "run_on_oak.py", "run_on_oak.json",
                                           "detect_on_oak.py", "detect_on_oak.json", "headbody_postprocess.py"}
    assert all(p.parent == out and p.is_file() for p in dai.files)           # published, not left in staging
    entry = json.loads((out / "manifest.json").read_text())["headbody.depthai.json"]   # recorded like every format
    assert entry["stage"] == "depthai" and entry["source"]["path"] == str(blob)
    assert entry["sha256"]["detect_on_oak.py"] == hashlib.sha256((out / "detect_on_oak.py").read_bytes()).hexdigest()
    assert entry["source"]["sha256"] == hashlib.sha256(blob.read_bytes()).hexdigest()
    assert dai.manifest == out / "manifest.json"
    # the host files are the package's own, verbatim (one source of truth)
    assert (out / "headbody_postprocess.py").read_bytes() == Path(postprocess.__file__).read_bytes()
    assert (out / "detect_on_oak.py").read_bytes() == SCRIPT_SOURCE.read_bytes()
    settings = json.loads((out / "detect_on_oak.json").read_text())
    assert settings["decode"] == {"score_threshold": 0.05, "max_detections": 100, "nms_iou": 0.6, "stride": 4}
    assert settings["categories"] == ["head", "body"] and settings["output"] == "output"


@pytest.mark.parametrize("artifact", ["openvino", "onnx"])
def test_host_script_boxes_equal_evaluation(exported, frames, tmp_path, artifact):
    import cv2

    from edgedeploy.runtime import load
    from edgedeploy.zoo.headbody import evaluate, evaluate_detections, predict
    from edgedeploy.zoo.headbody.postprocess import Detections

    results, out = exported
    scenes, folder = frames
    model = results[artifact].path
    run = _run_script(out, "--source", str(folder), "--model", str(model), "--out", str(tmp_path), "--threshold",
                      "0.2")
    assert run.returncode == 0, run.stderr
    assert "3 frames in" in run.stdout and "post-processing: edgedeploy" in run.stdout
    got = json.loads((tmp_path / "detections.json").read_text())
    assert got["postprocess"] == "edgedeploy"
    session = load(model, threads=1)
    assert (session.inputs[0].dtype == "uint8") == (artifact == "openvino")       # U8 IR, float ONNX: both fed
    want, _ = predict(session, scenes)                                          # what evaluate() decodes
    assert [f["detections"] for f in got["frames"]] == [d.to_dict()["detections"] for d in want]
    assert sum(len(f["detections"]) for f in got["frames"]) > 30
    # and scored, the script's boxes give evaluate()'s numbers
    dets = [Detections(np.array([d["box"] for d in f["detections"]], np.float32).reshape(-1, 4),
                       np.array([d["score"] for d in f["detections"]], np.float32),
                       np.array([("head", "body").index(d["category"]) for d in f["detections"]]))
            for f in got["frames"]]
    assert evaluate_detections(dets, scenes).map50 == pytest.approx(evaluate(session, scenes).map50, abs=0.05)
    # the boxes are drawn: each annotated frame is the scene plus coloured rectangles where the boxes are
    drawn = cv2.imread(str(tmp_path / "frame_00000.png"))
    assert drawn.shape == (352, 1280, 3)
    colored = np.abs(drawn.astype(int) - drawn[..., ::-1].astype(int)).sum(-1) > 60     # red or green, not gray
    shown = [d for d in want[0].to_dict()["detections"] if d["score"] >= 0.2]
    assert shown and colored.any()
    x, y, _, h = np.round(shown[0]["box"]).astype(int)
    assert colored[max(y, 0):y + h + 1, max(x, 0)].any()                       # the best box's left edge


def test_host_script_without_edgedeploy_uses_the_copy(exported, frames, tmp_path):
    results, out = exported
    _, folder = frames
    hide = tmp_path / "hide" / "edgedeploy"                                    # a camera host without edgedeploy
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('edgedeploy is not installed here')\n")
    runs = {}
    for label, env in (("edgedeploy", None), ("copy", {"PYTHONPATH": str(hide.parent)})):
        run = _run_script(out, "--source", str(folder), "--model", str(results["openvino"].path), "--out",
                          str(tmp_path / label), "--frames", "2", env=env)
        assert run.returncode == 0, run.stderr
        runs[label] = json.loads((tmp_path / label / "detections.json").read_text())
    assert runs["copy"]["postprocess"] == "copy" and runs["edgedeploy"]["postprocess"] == "edgedeploy"
    assert runs["copy"]["frames"] == runs["edgedeploy"]["frames"] and len(runs["copy"]["frames"]) == 2


def test_camera_pipeline_builds_without_a_device(exported):
    results, out = exported
    code = ("import json; import depthai as dai, detect_on_oak as d; "      # run from the folder: it imports there
            "p = d.make_camera_pipeline(dai, str(d.oak.BLOB), d.oak.WIDTH, d.oak.HEIGHT).serializeToJson(); "
            "print(json.dumps({'nodes': {n[1]['id']: n[1]['name'] for n in p['pipeline']['nodes']}, "
            "'props': {n[1]['name']: n[1]['properties'] for n in p['pipeline']['nodes'] if n[1]['name'] != 'XLinkOut'}, "
            "'links': [[c['node1Id'], c['node1Output'], c['node2Id']] for c in p['pipeline']['connections']]}, default=str))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                         cwd=out)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.strip().splitlines()[-1])
    names = {int(k): v for k, v in got["nodes"].items()}
    links = {(names[a], out_name, names[b]) for a, out_name, b in got["links"]}
    assert links == {("ColorCamera", "preview", "ImageManip"), ("ImageManip", "out", "NeuralNetwork"),
                     ("NeuralNetwork", "out", "XLinkOut"), ("NeuralNetwork", "passthrough", "XLinkOut")}
    assert (got["props"]["ColorCamera"]["previewWidth"], got["props"]["ColorCamera"]["previewHeight"]) == (1280, 352)
    assert got["props"]["ImageManip"]["outputFrameSize"] == 1280 * 352                 # GRAY8 at the network size
    assert got["props"]["NeuralNetwork"]["blobSize"] == results["blob"].path.stat().st_size


def test_bad_input(exported, tmp_path):
    from edgedeploy.run.export import ExportConfig
    from edgedeploy.zoo.headbody.oak import write_oak_host

    results, out = exported
    with pytest.raises(ConfigError, match=r"add blob \(--to blob,depthai\)"):
        ExportConfig(to=("onnx", "depthai"))
    lone = tmp_path / "lone.blob"
    lone.write_bytes(results["blob"].path.read_bytes())
    with pytest.raises(ArtifactError, match="no run_on_oak.py"):
        write_oak_host(lone)
    (tmp_path / "run_on_oak.py").write_text("")
    (tmp_path / "run_on_oak.json").write_text(json.dumps({"height": 352, "outputs": {"feat": [1, 8, 88, 320]}}))
    with pytest.raises(ShapeError, match=r"decodes one \(1, 6, h, w\) map"):
        write_oak_host(lone)
    run = _run_script(out, "--source", str(tmp_path), "--model", str(tmp_path / "run_on_oak.json"))
    assert run.returncode != 0 and "give the exported .xml (OpenVINO IR) or .onnx file" in run.stderr
    run = _run_script(out, "--source", str(tmp_path / "empty"), "--model", str(results["onnx"].path))
    assert run.returncode != 0 and "cannot open video source" in run.stderr


def test_a_model_without_a_host_decoder_gets_the_generic_script(tmp_path):
    from torch import nn

    from edgedeploy.export.blob import BlobConfig
    from edgedeploy.run.export import ExportConfig, export

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, stride=2, padding=1)).eval()
    results = export(model, ExportConfig(to=("blob", "depthai"), blob=BlobConfig(shaves=4, cmx_slices=4)),
                     input_shape=(1, 3, 48, 64), out=tmp_path, name="tiny")
    dai = results[-1]
    assert [r.format for r in results] == ["blob", "depthai"] and dai.details["host_script"] == "run_on_oak.py"
    assert {p.name for p in dai.files} == {"tiny.depthai.json", "run_on_oak.py", "run_on_oak.json"}
    assert not (tmp_path / "detect_on_oak.py").exists()
    assert dai.details["outputs"][next(iter(dai.details["outputs"]))]["shape"] == [1, 4, 24, 32]
