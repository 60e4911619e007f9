"""CLI end to end: ``edgedeploy export`` then ``edgedeploy bench`` on what it wrote; one-line errors."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from _export_models import plain_cnn

from edgedeploy.cli import main
from edgedeploy.frames import camera_frames
from edgedeploy.export.openvino import OpenVinoConfig, preprocess_numpy
from edgedeploy.runtime import load

MODEL = "_export_models:plain_cnn"


def _all(captured) -> str:
    """stdout and stderr of a CLI run (errors are printed on stderr)."""
    return captured.out + captured.err


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "build"
    rc = main(["export", MODEL, "--input", "1x3x32x32", "--to", "onnx,openvino", "--out", str(out),
               "--exporter", "torchscript", "--opset", "17", "--precision", "fp32", "--input-type", "u8",
               "--input-layout", "NHWC",
               "--mean", "123.675,116.28,103.53", "--scale", "58.395,57.12,57.375", "--reverse-channels",
               "--json", str(out / "export.json")])
    assert rc == 0
    return out


def test_export_writes_verified_onnx_and_ir(exported):
    assert sorted(os.listdir(exported)) == ["export.json", "manifest.json", "plain_cnn.bin", "plain_cnn.onnx",
                                            "plain_cnn.xml"]
    res = json.loads((exported / "export.json").read_text())["results"]
    assert [r["format"] for r in res] == ["onnx", "openvino"]
    assert res[0]["parity"]["max_abs"] < 1e-4 and res[0]["details"]["opset"] == 17
    assert res[1]["parity"]["reference"] == "torch" and res[1]["parity"]["max_abs"] < 1e-4
    manifest = json.loads((exported / "manifest.json").read_text())     # one entry per artifact
    assert {k: v["stage"] for k, v in manifest.items()} == {"plain_cnn.onnx": "onnx", "plain_cnn.xml": "openvino"}
    # the IR takes raw BGR camera frames and matches torch on the same frames normalized in numpy
    frames = camera_frames(1, 32, 32, order="BGR", layout="NHWC")
    cfg = OpenVinoConfig(precision="fp32", input_layout="NHWC", reverse_channels=True,
                         mean=(123.675, 116.28, 103.53), scale=(58.395, 57.12, 57.375))
    with torch.no_grad():
        ref = plain_cnn()(torch.from_numpy(preprocess_numpy(frames, cfg))).numpy()
    assert np.abs(load(exported / "plain_cnn.xml").run(frames)[0] - ref).max() < 1e-4


def test_bench_artifacts_side_by_side(exported, tmp_path, capsys):
    capsys.readouterr()
    js = tmp_path / "bench.json"
    rc = main(["bench", str(exported / "plain_cnn.onnx"), str(exported / "plain_cnn.xml"), "--threads", "1,2",
               "--repeats", "3", "--warmup", "1", "--json", str(js)])
    assert rc == 0
    text = _all(capsys.readouterr())
    assert "onnxruntime" in text and "openvino" in text and "1.00x" in text
    data = json.loads(js.read_text())
    rows = data["results"]
    assert [(r["runtime"], r["threads"]) for r in rows] == [("onnxruntime", 1), ("onnxruntime", 2),
                                                            ("openvino", 1), ("openvino", 2)]
    assert all(r["repeats"] == 3 and r["median_ms"] > 0 and r["fps"] > 0 for r in rows)
    assert data["host"]["cpu_model"]


def test_bench_torch_model_and_onnx_on_openvino(exported, capsys):
    rc = main(["bench", MODEL, "--input", "1x3x32x32", "--repeats", "2", "--warmup", "0"])
    assert rc == 0 and "torch" in _all(capsys.readouterr())
    rc = main(["bench", str(exported / "plain_cnn.onnx"), "--runtime", "openvino", "--repeats", "2"])
    assert rc == 0 and "openvino" in _all(capsys.readouterr())


@pytest.mark.parametrize(("args", "message"), [
    (["export", MODEL, "--input", "1x3x32x32", "--to", "onnx,tflite"], "unknown export format"),
    (["export", MODEL, "--input", "1x3xAx32"], "cannot parse input shape"),
    (["export", MODEL], "give its input shape"),
    (["export", "_export_models:Svd", "--input", "1x3x8x8", "--to", "onnx", "--exporter", "torchscript"],
     "produced by module spectral"),
    (["export", MODEL, "--input", "1x3x32x32", "--mean", "1,x"], "--mean"),
    (["bench", "missing.onnx"], "does not exist"),
    (["bench", "{onnx}", "--runtime", "tensorrt"], "choose one of"),
    (["bench", "{onnx}", "--threads", "two"], "--threads"),
])
def test_errors_are_one_line_with_exit_2(exported, tmp_path, capsys, args, message):
    args = [a.replace("{onnx}", str(exported / "plain_cnn.onnx")) for a in args]
    if args[0] == "export":
        args += ["--out", str(tmp_path / "o")]
    capsys.readouterr()
    assert main(args) == 2
    out = _all(capsys.readouterr())
    assert message in out and "Traceback" not in out and out.startswith("error:")
    assert not (tmp_path / "o").exists() or os.listdir(tmp_path / "o") == []


def test_unwritable_out_folder(tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    assert main(["export", MODEL, "--input", "1x3x32x32", "--to", "onnx", "--exporter", "torchscript",
                 "--out", str(blocker / "out")]) == 2
    assert "cannot create output folder" in _all(capsys.readouterr())
    assert os.listdir(tmp_path) == ["blocker"]


@pytest.mark.slow
def test_export_to_blob_end_to_end(tmp_path):
    """--to onnx,openvino,blob: the blob backend compiles the ONNX this command wrote (offline toolchain)."""
    from edgedeploy.export.myriad_toolchain import ensure_toolchain

    ensure_toolchain(quiet=True)
    out = tmp_path / "b"
    rc = main(["export", MODEL, "--input", "1x3x32x32", "--to", "onnx,openvino,blob", "--out", str(out),
               "--exporter", "torchscript", "--opset", "11", "--input-type", "u8", "--input-layout", "NHWC",
               "--reverse-channels",
               "--mean", "123.7,116.3,103.5", "--scale", "58.4,57.1,57.4", "--shaves", "4",
               "--json", str(tmp_path / "r.json")])
    assert rc == 0
    res = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [r["format"] for r in res][:2] == ["onnx", "openvino"] and len(res) == 3
    blob = Path(res[2]["path"])
    assert blob.suffix == ".blob" and blob.parent == out and blob.stat().st_size > 1000
    stages = {v["stage"] for v in json.loads((out / "manifest.json").read_text()).values()}
    assert stages == {"onnx", "openvino", "blob"}
    info = res[2]["details"]["blob"]          # read back from the compiled blob
    assert info["shaves"] == 4 and info["cmx_slices"] == 4
    assert [i["dtype"] for i in info["inputs"].values()] == ["U8F"]
    assert all(r["parity"]["max_abs"] < 1e-3 for r in res)
