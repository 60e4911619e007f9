"""export_openvino: IR parity vs torch on OpenVINO CPU (f32), U8 NHWC BGR preprocessing, bad input."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from _export_models import flow_warp, plain_cnn, shuffle_up

from edgedeploy.errors import ArtifactError, ConfigError, ParityError
from edgedeploy.frames import camera_frames
from edgedeploy.export.onnx import OnnxConfig, export_onnx
from edgedeploy.export.openvino import OpenVinoConfig, export_openvino, preprocess_numpy
from edgedeploy.runtime import load

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
CAMERA = OpenVinoConfig(precision="fp32", input_layout="NHWC", reverse_channels=True, mean=MEAN, scale=STD,
                        input_type="u8")
FACTORIES = {"plain_cnn": plain_cnn, "shuffle_up": shuffle_up, "flow_warp": flow_warp}


class _OnnxCache(dict):
    """ONNX exports made on first use (so a deselected test costs nothing)."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def __missing__(self, key):
        model, exporter = key
        x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        cfg = OnnxConfig(exporter=exporter, opset=None if exporter == "dynamo" else 17)
        self[key] = export_onnx(FACTORIES[model](), x, cfg, out=self.folder / exporter, name=model).path
        return self[key]


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    return _OnnxCache(tmp_path_factory.mktemp("onnx"))


def _matrix():
    for m in FACTORIES:
        yield pytest.param(m, "dynamo", id=f"{m}-dynamo")
        # the torchscript half of the matrix is slower overall; still run in CI (`slow`)
        yield pytest.param(m, "torchscript", id=f"{m}-torchscript", marks=pytest.mark.slow)


def _torch_on_frames(model, frames, config):
    with torch.no_grad():
        return model(torch.from_numpy(preprocess_numpy(frames, config))).numpy()


@pytest.mark.parametrize(("model_name", "exporter"), list(_matrix()))
def test_ir_from_onnx_matches_torch_on_camera_frames(tmp_path, onnx_files, model_name, exporter):
    model = FACTORIES[model_name]()
    res = export_openvino(onnx_files[(model_name, exporter)], CAMERA, out=tmp_path, reference=model)
    assert [f.name for f in res.files] == [f"{model_name}.xml", f"{model_name}.bin"]
    assert res.parity.reference == "torch" and res.parity.max_abs < 1e-4
    # independent check: other real frames, our own runtime, torch on numpy-preprocessed frames
    frames = camera_frames(1, 32, 32, order="BGR", layout="NHWC")[:, ::-1].copy()   # flipped photo
    session = load(res.path)
    assert session.inputs[0].dtype == "uint8" and session.inputs[0].shape == (1, 32, 32, 3)
    got = session.run(frames)[0]
    assert np.abs(got - _torch_on_frames(model, frames, CAMERA)).max() < 1e-4
    assert sorted(os.listdir(tmp_path)) == sorted(["manifest.json", f"{model_name}.xml", f"{model_name}.bin"])


def test_preprocessing_is_really_baked_in(tmp_path, onnx_files):
    """U8 NHWC BGR frames + mean/scale: the IR must equal torch on RGB-normalized NCHW, and not on BGR."""
    model = plain_cnn()
    res = export_openvino(onnx_files[("plain_cnn", "dynamo")], CAMERA, out=tmp_path, reference=model)
    frames = camera_frames(1, 32, 32, order="BGR", layout="NHWC")
    got = load(res.path).run(frames)[0]
    right = _torch_on_frames(model, frames, CAMERA)
    wrong = _torch_on_frames(model, frames, OpenVinoConfig(precision="fp32", input_layout="NHWC", mean=MEAN,
                                                            scale=STD, reverse_channels=False))
    assert np.abs(got - right).max() < 1e-4
    assert np.abs(got - wrong).max() > 100 * np.abs(got - right).max()
    assert res.op_histogram.get("Subtract", 0) + res.op_histogram.get("Multiply", 0) >= 1
    man = json.loads((tmp_path / "manifest.json").read_text())["plain_cnn.xml"]
    assert man["config"]["mean"] == list(MEAN) and man["details"]["input_layout"] == "NHWC"
    assert set(man["sha256"]) == {"plain_cnn.xml", "plain_cnn.bin"}


@pytest.mark.parametrize("precision", [pytest.param("fp32", marks=pytest.mark.slow), "fp16"])
def test_ir_from_torch_module_fp32_and_fp16(tmp_path, precision):
    model = flow_warp()
    x = torch.randn(1, 3, 32, 32)
    cfg = OpenVinoConfig(precision=precision, input_type="f32", mean=(127.5,), scale=(127.5,))
    res = export_openvino(model, cfg, out=tmp_path / precision, example_inputs=x)
    p = res.parity
    assert p.reference == "torch" and (p.atol, p.rtol) == ((1e-4, 1e-4) if precision == "fp32" else (1e-2, 1e-2))
    assert p.max_abs < (1e-4 if precision == "fp32" else 5e-2)
    assert res.op_histogram.get("GridSample") == 1
    assert load(res.path).inputs[0].dtype == "float32"
    if precision == "fp16":          # grid_sample's coordinates stay FP32 in the FP16 IR, chosen and checked
        islands = res.details["fp32_islands"]
        assert islands["passed"] and any("GridSample" in k for k in islands["kept"])
        assert islands["err_after"] < islands["err_before"] and any("kept FP32" in w for w in res.warnings)


def test_fp16_weights_are_smaller(tmp_path, onnx_files):
    src = onnx_files[("plain_cnn", "dynamo")]
    a = export_openvino(src, OpenVinoConfig(precision="fp32"), out=tmp_path, name="f32")
    b = export_openvino(src, OpenVinoConfig(precision="fp16"), out=tmp_path, name="f16")
    assert a.files[1].stat().st_size > 1.8 * b.files[1].stat().st_size
    assert 1e-6 < b.parity.max_abs and b.parity.max_rel < 1e-2 and a.parity.max_rel < 1e-5


def test_parity_failure_names_output_with_nothing_written(tmp_path, onnx_files):
    other = plain_cnn()
    with torch.no_grad():
        other.head.bias += 0.5          # the reference is not the model that was exported
    with pytest.raises(ParityError, match="output 'output'.*tolerance"):
        export_openvino(onnx_files[("plain_cnn", "dynamo")], CAMERA, out=tmp_path, reference=other)
    assert os.listdir(tmp_path) == []


def test_bad_inputs(tmp_path, onnx_files):
    with pytest.raises(ArtifactError, match="does not exist"):
        export_openvino(tmp_path / "missing.onnx", out=tmp_path / "o")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x01 definitely not protobuf" * 20)
    with pytest.raises(ArtifactError, match="corrupt"):
        export_openvino(corrupt, out=tmp_path / "o")
    with pytest.raises(ConfigError, match="example_inputs"):
        export_openvino(plain_cnn(), out=tmp_path / "o")
    with pytest.raises(ConfigError, match="3 values but the model input has 3|channels"):
        export_openvino(onnx_files[("plain_cnn", "dynamo")], OpenVinoConfig(mean=(1.0, 2.0)), out=tmp_path / "o")
    with pytest.raises(ConfigError, match="fp16, fp32"):
        OpenVinoConfig(precision="int4")
    with pytest.raises(ConfigError, match="permutation"):
        OpenVinoConfig(input_layout="NHW")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(ArtifactError, match="cannot create output folder"):
        export_openvino(onnx_files[("plain_cnn", "dynamo")], out=blocker / "x")
    assert sorted(os.listdir(tmp_path)) == ["blocker", "corrupt.onnx"]


def test_camera_frames_are_real_photos():
    f = camera_frames(2, 48, 64, order="BGR", layout="NHWC")
    assert f.dtype == np.uint8 and f.shape == (2, 48, 64, 3)
    assert 20 < f.std() < 120 and len(np.unique(f)) > 150       # photographic spread, not flat or binary
    assert not np.array_equal(f[0], f[1])
    rgb = camera_frames(1, 48, 64, order="RGB", layout="NCHW")
    assert rgb.shape == (1, 3, 48, 64) and np.array_equal(rgb[0].transpose(1, 2, 0), f[0, :, :, ::-1])
    # neighbouring pixels are correlated in real images (noise would give ~0)
    x = f[0, :, :, 1].astype(np.float64)
    assert np.corrcoef(x[:, :-1].ravel(), x[:, 1:].ravel())[0, 1] > 0.5
