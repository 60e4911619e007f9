"""MyriadX blobs compiled offline for real (OpenVINO 2021.4.2 MYRIAD plugin), read back with depthai."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgedeploy.errors import ArtifactError, ConfigError, ToolchainError, UnsupportedOpError

MEAN, SCALE = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)

pytestmark = pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript:DeprecationWarning")


def _all(captured) -> str:
    """stdout and stderr of a CLI run (errors are printed on stderr)."""
    return captured.out + captured.err


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class PixelShuffleNet(nn.Module):       # an ESPCN-style x2 up-sampler
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.up = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.up(torch.relu(self.conv(x))))


class Warp(nn.Module):                  # the gaze-correction warp: needs GridSample
    def forward(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(x, grid, align_corners=False)


def _export(model: nn.Module, args: tuple, path, opset: int, names=("image",)) -> str:
    torch.manual_seed(0)
    model = model.eval()
    for m in model.modules():       # non-trivial BatchNorm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    torch.onnx.export(model, args, str(path), dynamo=False, opset_version=opset, input_names=list(names),
                      output_names=["out"])
    return str(path)


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    cnn, ps = SmallCNN(), PixelShuffleNet()
    return {"cnn": (_export(cnn, (torch.rand(1, 3, 32, 32),), d / "cnn.onnx", 11), cnn),
            "pixelshuffle": (_export(ps, (torch.rand(1, 3, 24, 40),), d / "pixel_shuffle.onnx", 17), ps)}


@pytest.fixture(scope="session")
def myriad_toolchain():
    """Install the offline MyriadX toolchain on first use (CI: a fresh machine, PyPI + apt only)."""
    from edgedeploy.export.myriad_toolchain import ensure_toolchain

    return ensure_toolchain(quiet=True)


def _read_back(path):
    import depthai as dai

    blob = dai.OpenVINO.Blob(path)
    return blob, {n: (list(reversed(t.dims)), t.dataType.name) for n, t in blob.networkInputs.items()}, \
        {n: (list(reversed(t.dims)), t.dataType.name) for n, t in blob.networkOutputs.items()}


def test_cnn_blob_u8_with_baked_preprocessing(myriad_toolchain, onnx_models, tmp_path):
    from edgedeploy.export.blob import BlobConfig, export_blob

    cfg = BlobConfig(shaves=4, cmx_slices=4, input_precision="U8", mean=MEAN, scale=SCALE, reverse_channels=True)
    res = export_blob(onnx_models["cnn"][0], cfg, out=tmp_path)
    assert res.path == tmp_path / "cnn_4shave.blob" and res.format == "blob"
    blob, ins, outs = _read_back(res.path)          # independent read-back, not only ours
    assert (blob.numShaves, blob.numSlices) == (4, 4)
    assert ins == {"image": ([1, 3, 32, 32], "U8F")}
    assert list(outs) == ["out"] and outs["out"][0] == [1, 10]
    assert res.details["blob"]["shaves"] == 4 and res.details["blob"]["cmx_slices"] == 4
    assert res.details["blob"]["inputs"]["image"] == {"shape": [1, 3, 32, 32], "dtype": "U8F"}
    assert res.details["blob_bytes"] == res.path.stat().st_size > 1000
    # the baked graph (Cast, Gather for BGR->RGB, Sub, Mul) was checked on ONNX Runtime
    assert {"Cast", "Gather", "Sub", "Mul"} <= set(res.op_histogram)
    assert res.parity is not None and res.parity.max_abs < 1e-4
    manifest = json.loads((tmp_path / "manifest.json").read_text())["cnn_4shave.blob"]
    assert manifest["files"] == ["cnn_4shave.blob", "cnn_myriad.onnx"]
    assert manifest["details"]["blob"]["shaves"] == 4 and manifest["config"]["reverse_channels"] is True
    from edgedeploy._io import sha256_file
    assert manifest["sha256"]["cnn_4shave.blob"] == sha256_file(res.path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]     # no staging left behind


def test_pixelshuffle_blob_fp16_other_shaves_and_opset_downgrade(myriad_toolchain, onnx_models, tmp_path):
    from edgedeploy.export.blob import BlobConfig, export_blob

    cfg = BlobConfig(shaves=5, cmx_slices=7, input_precision="FP16", scale=255.0)
    res = export_blob(onnx_models["pixelshuffle"][0], cfg, out=tmp_path)
    blob, ins, outs = _read_back(res.path)
    assert (blob.numShaves, blob.numSlices) == (5, 7)
    assert ins == {"image": ([1, 3, 24, 40], "FP16")}        # the RVC2 native type, not the reader's FP32
    assert outs["out"][0] == [1, 3, 48, 80]
    assert "DepthToSpace" in res.op_histogram and res.op_histogram["Mul"] == 1     # x / 255 baked in
    # opset 17 -> 13 (the newest the 2021.4 reader knows): onnx.version_converter has no Relu 14 -> 13
    # adapter, so the ops are relabeled (each newer version only added types) and re-checked on ORT
    assert any("relabeled opset 17 as 13" in w for w in res.warnings)
    assert res.details["source_opset"] == 17 and res.details["opset"] == 13 and res.parity.max_abs < 1e-4


class MeanHead(PixelShuffleNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).mean(dim=1, keepdim=True)


def test_opset_that_cannot_be_lowered_is_named(tmp_path):
    from edgedeploy.errors import ExportError
    from edgedeploy.export.blob import export_blob

    src = _export(MeanHead(), (torch.rand(1, 3, 8, 8),), tmp_path / "mean18.onnx", 18)   # ReduceMean-18: axes input
    with pytest.raises(ExportError, match=r"opset 18.*ReduceMean \(node .*changed in opset 18\).*opset_version=13"):
        export_blob(src, out=tmp_path / "out")


def test_baked_preprocessing_matches_numpy_and_torch(onnx_models):
    import onnx
    import onnxruntime as ort

    from edgedeploy.export.onnx_preprocess import Preprocess, bake_preprocessing, preprocessing_parity

    path, model = onnx_models["cnn"]
    original = onnx.load(path)
    pre = Preprocess(input_type="u8", mean=MEAN, scale=SCALE, reverse_channels=True)
    baked = bake_preprocessing(original, pre)
    assert baked.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert original.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT   # input untouched
    frames = np.random.default_rng(1).integers(0, 256, size=(1, 3, 32, 32), dtype=np.uint8)
    assert preprocessing_parity(original, baked, pre, frames) < 1e-5
    # independent reference: torch on BGR frames turned into normalized RGB by hand
    rgb = torch.from_numpy(frames[:, ::-1].astype(np.float32).copy())
    ref = model((rgb - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(SCALE).view(1, 3, 1, 1)).detach().numpy()
    got = ort.InferenceSession(baked.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"image": frames})[0]
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    # the reversal matters: without it the outputs differ
    plain = bake_preprocessing(original, Preprocess(input_type="u8", mean=MEAN, scale=SCALE))
    other = ort.InferenceSession(plain.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"image": frames})[0]
    assert np.abs(other - ref).max() > 1e-3
    fp32 = Preprocess(input_type="fp32", mean=0.5, scale=(0.25, 0.5, 2.0))     # float input, scalar mean
    baked32 = bake_preprocessing(original, fp32)
    assert {"Sub", "Mul"} <= {n.op_type for n in baked32.graph.node} and "Cast" not in {n.op_type for n in baked32.graph.node[:2]}
    assert preprocessing_parity(original, baked32, fp32, frames.astype(np.float32)) < 1e-5
    with pytest.raises(ConfigError, match="mean has 2 values but the input has 3 channels"):
        bake_preprocessing(original, Preprocess(mean=(1.0, 2.0)))


def test_gridsample_rejected_naming_op_and_node(onnx_models, tmp_path):
    from edgedeploy.export.blob import BlobConfig, export_blob

    src = _export(Warp(), (torch.rand(1, 3, 8, 8), torch.rand(1, 8, 8, 2) * 2 - 1), tmp_path / "warp.onnx", 16,
                  names=("image", "grid"))
    out = tmp_path / "out"
    with pytest.raises(UnsupportedOpError, match=r"op GridSample \(node '.*GridSample.*'; newer than .*MyriadX"):
        export_blob(src, BlobConfig(), out=out)
    assert not out.exists() or not any(out.iterdir())        # nothing written


def test_bad_inputs_give_clear_errors(onnx_models, tmp_path, monkeypatch):
    from edgedeploy.export.blob import BlobConfig, export_blob

    with pytest.raises(ArtifactError, match="does not exist"):
        export_blob(tmp_path / "missing.onnx", out=tmp_path)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(np.random.default_rng(0).bytes(512))
    with pytest.raises(ArtifactError, match="not a valid ONNX model"):
        export_blob(corrupt, out=tmp_path)
    with pytest.raises(ConfigError, match="shaves=17 is out of range"):
        BlobConfig(shaves=17)
    with pytest.raises(ConfigError, match="shaves=8 > cmx_slices=6"):
        BlobConfig(shaves=8, cmx_slices=6)
    with pytest.raises(ConfigError, match="input_precision 'INT8' is unknown"):
        BlobConfig(input_precision="INT8")
    with pytest.raises(ConfigError, match="scale .* contains 0"):
        BlobConfig(scale=(1.0, 0.0, 1.0))
    import openvino as ov

    xml = tmp_path / "cnn.xml"
    ov.save_model(ov.convert_model(onnx_models["cnn"][0]), str(xml))      # IR v11, no manifest
    with pytest.raises(ConfigError, match="IR version 11.*names no unchanged source .onnx; pass the .onnx"):
        export_blob(xml, out=tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ArtifactError, match="cannot create output folder"):
        export_blob(onnx_models["cnn"][0], out=blocker / "out")
    with pytest.raises(ConfigError, match="online=True: blobconverter compiles with as many CMX slices as SHAVEs"):
        BlobConfig(shaves=4, cmx_slices=8, online=True)
    monkeypatch.setitem(sys.modules, "blobconverter", None)       # not installed
    with pytest.raises(ToolchainError, match="pip install blobconverter"):
        export_blob(onnx_models["cnn"][0], BlobConfig(online=True), out=tmp_path / "online")
    assert not list((tmp_path / "online").glob("*.blob"))


def test_toolchain_errors_name_what_is_missing(tmp_path, monkeypatch):
    from edgedeploy.export import myriad_toolchain as mt

    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path / "cache"))
    assert mt.toolchain_dir() == tmp_path / "cache" / "toolchains" / "myriad-2021.4.2"
    assert mt.installed() is None and mt.status()["installed"] is False
    real_which = mt.shutil.which
    monkeypatch.setattr(mt.shutil, "which", lambda n: None if n == "g++" else real_which(n))
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(ToolchainError, match=r"g\+\+ not found.*apt-get install -y g\+\+"):
        mt.install_toolchain(quiet=True)
    monkeypatch.setattr(mt.shutil, "which", real_which)
    monkeypatch.setattr(mt, "_libusb_loadable", lambda: False)
    monkeypatch.setattr(mt.os, "geteuid", lambda: 1000)
    with pytest.raises(ToolchainError, match="libusb-1.0-0.*apt-get install -y libusb-1.0-0"):
        mt.install_toolchain(quiet=True)
    monkeypatch.undo()
    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path / "cache"))
    # PyPI unreachable: pip fails fast on a closed local port
    for key, value in {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "",
                       "PIP_FIND_LINKS": "", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2", "PIP_NO_INDEX": "0",
                       "PIP_CONFIG_FILE": "/dev/null"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ToolchainError, match="could not download openvino==2021.4.2 from PyPI"):
        mt.install_toolchain(quiet=True)
    bogus = tmp_path / "openvino-2021.4.2-cp39.whl"
    bogus.write_bytes(b"not a wheel")
    with pytest.raises(ToolchainError, match="is not an openvino 2021.4.2 wheel"):
        mt.install_toolchain(quiet=True, wheel=bogus)
    import zipfile

    with zipfile.ZipFile(bogus, "w") as zf:               # a wheel, but not the pinned build
        zf.writestr("openvino/libs/plugins.xml", "<ie/>")
    with pytest.raises(ToolchainError, match="not the pinned 2260ac47"):
        mt.install_toolchain(quiet=True, wheel=bogus)
    # nothing half-installed: only the lock file is left in the cache
    assert [p.name for p in (tmp_path / "cache" / "toolchains").iterdir()] == [".myriad-2021.4.2.lock"]


def test_toolchain_cli(myriad_toolchain, capsys):
    from edgedeploy.cli import main

    assert main(["toolchain", "install", "myriad"]) == 0
    assert "MyriadX toolchain ready" in _all(capsys.readouterr())
    assert main(["toolchain", "status"]) == 0
    out = _all(capsys.readouterr())
    assert "myriad-2021.4.2" in out and "libusb-1.0-0" in out and "no" not in out.split()
    assert main(["toolchain", "install", "tensorrt"]) == 2
    assert "unknown toolchain 'tensorrt'; valid choices: myriad" in _all(capsys.readouterr())


def test_ir_from_export_openvino_compiles_from_its_source_onnx(myriad_toolchain, onnx_models, tmp_path):
    from edgedeploy.export.blob import BlobConfig, export_blob
    from edgedeploy.export.openvino import OpenVinoConfig, export_openvino

    ir = export_openvino(onnx_models["cnn"][0], OpenVinoConfig(precision="fp32", input_type="f32"), out=tmp_path)
    res = export_blob(ir.path, BlobConfig(shaves=6, cmx_slices=6), out=tmp_path)
    assert res.path.name == "cnn_6shave.blob" and res.details["blob"]["shaves"] == 6
    assert any("compiled from cnn.onnx" in w for w in res.warnings)
    assert json.loads((tmp_path / "manifest.json").read_text())["cnn_6shave.blob"]["source"]["path"] == \
        onnx_models["cnn"][0]


class AbsNet(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.abs(x) + 1


def test_op_list_is_what_the_compiler_does(myriad_toolchain, tmp_path, monkeypatch):
    """Abs is listed as rejected because the real compiler rejects it: bypass the list and see."""
    from edgedeploy.errors import ExportError
    from edgedeploy.export import blob as blob_mod
    from edgedeploy.export import myriad_ops

    src = _export(AbsNet(), (torch.rand(1, 3, 8, 8),), tmp_path / "abs.onnx", 11)
    with pytest.raises(UnsupportedOpError, match=r"op Abs \(node '.*Abs.*'; the compiler says: unsupported layer type"):
        blob_mod.export_blob(src, out=tmp_path / "a")
    monkeypatch.setattr(myriad_ops, "myriad_supported_ops", lambda: frozenset({"Abs", "Add", "Constant"}))
    with pytest.raises(ExportError, match=r"compiler rejected .*unsupported layer type \"Abs\""):
        blob_mod.export_blob(src, out=tmp_path / "b")
    assert not list((tmp_path / "b").glob("*.blob"))
    monkeypatch.undo()
    table = myriad_ops._ops_table()
    assert not set(table["supported"]) & set(table["rejected"])
    assert {"Conv", "DepthToSpace", "Resize", "Gemm", "Relu"} <= myriad_ops.myriad_supported_ops()
    assert "GridSample" not in myriad_ops.myriad_supported_ops()
