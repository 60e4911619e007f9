"""The DepthAI 2.x pipeline (XLinkIn -> NeuralNetwork -> XLinkOut) for a real blob, built without hardware."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import py_compile

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.errors import ArtifactError, ShapeError, ToolchainError

pytestmark = pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript:DeprecationWarning")


@pytest.fixture(scope="module")
def blob(tmp_path_factory):
    """A real blob: a small CNN compiled offline (4 SHAVEs, U8 input)."""
    from edgedeploy.export.blob import BlobConfig, export_blob

    d = tmp_path_factory.mktemp("oak")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, stride=2, padding=1)).eval()
    torch.onnx.export(model, (torch.rand(1, 3, 48, 64),), str(d / "net.onnx"), dynamo=False, opset_version=11,
                      input_names=["frame"], output_names=["features"])
    return export_blob(d / "net.onnx", BlobConfig(shaves=4, cmx_slices=4, input_precision="U8", mean=127.5, scale=127.5), out=d).path


def test_pipeline_built_without_hardware(blob):
    from edgedeploy.export.depthai import build_depthai_pipeline

    res = build_depthai_pipeline(blob, (64, 48))
    assert res.nodes == ("XLinkIn", "NeuralNetwork", "XLinkOut")
    nodes = {n[1]["name"]: n[1] for n in res.summary["pipeline"]["nodes"]}
    size = blob.stat().st_size
    assert nodes["NeuralNetwork"]["properties"]["blobSize"] == size == res.blob_bytes
    assert nodes["NeuralNetwork"]["properties"]["numThreads"] == 2
    assert nodes["XLinkIn"]["properties"]["maxDataSize"] == 64 * 48 * 3          # one U8 BGR planar frame
    assert nodes["XLinkIn"]["properties"]["streamName"] == "nn_in"
    assert nodes["XLinkOut"]["properties"]["streamName"] == "nn_out"
    # the blob itself travels inside the serialized pipeline
    assert res.summary["assetStorage"] == {"bytes": size, "sha256": hashlib.sha256(blob.read_bytes()).hexdigest()}
    ids = {name: n["id"] for name, n in nodes.items()}
    links = {(c["node1Id"], c["node1Output"], c["node2Id"], c["node2Input"]) for c in res.summary["pipeline"]["connections"]}
    assert links == {(ids["XLinkIn"], "out", ids["NeuralNetwork"], "in"),
                     (ids["NeuralNetwork"], "out", ids["XLinkOut"], "in")}
    assert res.inputs == {"frame": {"shape": [1, 3, 48, 64], "dtype": "U8F"}}
    assert res.outputs["features"]["shape"] == [1, 4, 24, 32]


def test_run_on_oak_script(blob, tmp_path):
    import cv2
    import depthai as dai

    from edgedeploy.export.depthai import build_depthai_pipeline

    script = build_depthai_pipeline(blob).script
    assert script == blob.with_name("run_on_oak.py")
    py_compile.compile(str(script), doraise=True)
    spec = importlib.util.spec_from_file_location("run_on_oak", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (mod.WIDTH, mod.HEIGHT, mod.CHANNELS, mod.INPUT_PRECISION) == (64, 48, 3, "U8")
    assert mod.BLOB == blob.resolve() and mod.OUTPUTS == {"features": [1, 4, 24, 32]}
    pipeline = mod.make_pipeline(dai, str(mod.BLOB), mod.WIDTH, mod.HEIGHT, mod.CHANNELS, 1, 2,
                                 mod.STREAM_IN, mod.STREAM_OUT)        # the script's own builder, no device
    names = [n[1]["name"] for n in pipeline.serializeToJson()["pipeline"]["nodes"]]
    assert names == ["XLinkIn", "NeuralNetwork", "XLinkOut"]
    image = np.random.default_rng(0).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "frame.png"), image)
    frames = list(mod.read_frames(str(tmp_path / "frame.png"), 3))
    assert len(frames) == 3 and frames[0].shape == (120, 160, 3)
    planar = mod.to_planar(frames[0])
    assert planar.shape == (3, 48, 64) and planar.dtype == np.uint8
    np.testing.assert_array_equal(planar, cv2.resize(image, (64, 48)).transpose(2, 0, 1))


def test_pipeline_errors(blob, tmp_path, monkeypatch):
    import depthai as dai

    from edgedeploy.export.depthai import build_depthai_pipeline

    with pytest.raises(ShapeError, match=r"input_size \(224, 224\) does not match.*input_size=\(64, 48\)"):
        build_depthai_pipeline(blob, (224, 224))
    with pytest.raises(ArtifactError, match="does not exist"):
        build_depthai_pipeline(tmp_path / "none.blob", (64, 48))
    bad = tmp_path / "bad.blob"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ArtifactError, match="not a MyriadX blob"):
        build_depthai_pipeline(bad, (64, 48))
    monkeypatch.setattr(dai, "__version__", "3.12.0")
    with pytest.raises(ToolchainError, match="depthai 3.x removed XLinkIn/XLinkOut"):
        build_depthai_pipeline(blob, (64, 48))


def test_run_on_oak_decodes_outputs_of_any_precision(blob):
    import depthai as dai

    from edgedeploy.export.depthai import build_depthai_pipeline

    script = build_depthai_pipeline(blob).script
    spec = importlib.util.spec_from_file_location("run_on_oak_decode", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # depthai 2.x cannot build a device-side NNData on the host: mimic one (its raw buffer + real TensorInfos)
    a = np.linspace(-2, 2, 24, dtype=np.float16)
    b = np.arange(6, dtype=np.float32) / 7
    tensors = []
    for name, dtype, dims, offset in (("fp16_out", "FP16", [4, 6], 0), ("fp32_out", "FP32", [6], a.nbytes)):
        t = dai.TensorInfo()
        t.name, t.dataType, t.dims, t.offset = name, getattr(dai.TensorInfo.DataType, dtype), dims, offset
        tensors.append(t)

    class DeviceMessage:
        def getData(self):
            return np.frombuffer(a.tobytes() + b.tobytes(), dtype=np.uint8)

        def getAllLayers(self):
            return tensors

    out = mod.decode(DeviceMessage())
    assert list(out) == ["fp16_out", "fp32_out"]
    np.testing.assert_array_equal(out["fp16_out"], a.astype(np.float32))
    np.testing.assert_array_equal(out["fp32_out"], b)


@pytest.mark.parametrize("precision,bytes_per_value", [("FP16", 2), ("FP32", 4)])
def test_pipeline_for_float_inputs(blob, tmp_path, precision, bytes_per_value):
    from edgedeploy.export.blob import BlobConfig, export_blob
    from edgedeploy.export.depthai import build_depthai_pipeline

    res = export_blob(blob.with_name("net.onnx"), BlobConfig(shaves=4, cmx_slices=4, input_precision=precision),
                      out=tmp_path)
    built = build_depthai_pipeline(res.path, (64, 48))
    assert built.inputs == {"frame": {"shape": [1, 3, 48, 64], "dtype": precision}}
    xin = next(n[1] for n in built.summary["pipeline"]["nodes"] if n[1]["name"] == "XLinkIn")
    assert xin["properties"]["maxDataSize"] == 64 * 48 * 3 * bytes_per_value
    config = json.loads(built.script.with_name("run_on_oak.json").read_text())
    assert (config["input_name"], config["input_precision"]) == ("frame", precision)
