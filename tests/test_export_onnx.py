"""export_onnx: parity through both exporters, unsupported ops, fallback, bad output folders."""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
import torch
from _export_models import Svd, flow_warp, plain_cnn, shuffle_up

from edgedeploy.errors import ArtifactError, ConfigError, ParityError, UnsupportedOpError
from edgedeploy.export.onnx import OnnxConfig, export_onnx
from edgedeploy.runtime import load

MODELS = {"plain_cnn": (plain_cnn, "Conv"), "shuffle_up": (shuffle_up, "DepthToSpace"),
          "flow_warp": (flow_warp, "GridSample")}


def _x(seed: int = 0, shape=(1, 3, 32, 32)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _files(folder) -> list[str]:
    return sorted(p for p in os.listdir(folder))


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
@pytest.mark.parametrize("model_name", list(MODELS))
def test_parity_on_onnxruntime(tmp_path, model_name, exporter):
    factory, key_op = MODELS[model_name]
    model, x = factory(), _x()
    res = export_onnx(model, x, OnnxConfig(exporter=exporter, opset=17 if exporter == "torchscript" else None),
                      out=tmp_path, name=model_name)
    assert res.path == tmp_path / f"{model_name}.onnx" and res.path.is_file()
    assert res.format == "onnx" and res.details["exporter"] == exporter
    assert res.op_histogram.get(key_op, 0) >= 1
    assert res.parity.max_abs < 1e-4 and res.parity.reference == "torch" and res.parity.atol == 1e-4
    proto = onnx.load(str(res.path))
    onnx.checker.check_model(proto)
    # independent check on a fresh input (not the one parity was measured on)
    x2 = _x(1)
    with torch.no_grad():
        ref = model(x2).numpy()
    got = load(res.path).run(x2)[0]
    assert np.abs(got - ref).max() < 1e-4
    manifest = json.loads((tmp_path / "manifest.json").read_text())[res.path.name]
    assert manifest["files"] == [res.path.name] and len(manifest["sha256"][res.path.name]) == 64
    assert manifest["parity"]["max_abs"] == pytest.approx(res.parity.max_abs)
    assert manifest["config"]["exporter_used"] == exporter and "onnxruntime" in manifest["versions"]
    assert _files(tmp_path) == sorted([res.path.name, "manifest.json"])       # no staging leftovers


def test_simplify_removes_nodes_and_keeps_parity(tmp_path):
    model, x = plain_cnn(), _x()
    raw = export_onnx(model, x, OnnxConfig(exporter="torchscript", simplify=False, opset=17), out=tmp_path, name="raw")
    slim = export_onnx(model, x, OnnxConfig(exporter="torchscript", simplify=True, opset=17), out=tmp_path, name="slim")
    assert "BatchNormalization" not in slim.op_histogram          # folded into Conv
    assert sum(slim.op_histogram.values()) <= sum(raw.op_histogram.values())
    assert slim.parity.max_abs < 1e-4
    assert set(json.loads((tmp_path / "manifest.json").read_text())) == {"raw.onnx", "slim.onnx"}   # one entry per artifact


def test_names_and_dynamic_batch(tmp_path):
    cfg = OnnxConfig(exporter="torchscript", opset=17, input_names=("image",), output_names=("logits",),
                     dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    res = export_onnx(plain_cnn(), _x(), cfg, out=tmp_path)
    s = load(res.path)
    assert s.inputs[0].name == "image" and s.inputs[0].shape == (None, 3, 32, 32)
    assert s.outputs[0].name == "logits"
    assert s.run(_x(2, (4, 3, 32, 32)))[0].shape == (4, 10)


def test_unsupported_op_names_op_module_and_options(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(UnsupportedOpError) as err:
        export_onnx(flow_warp(), _x(), OnnxConfig(exporter="torchscript", opset=11), out=out)
    msg = str(err.value)
    assert "grid_sampler" in msg and "FlowWarp" in msg and "opset >= 16" in msg and "dynamo" in msg
    for exporter in ("dynamo", "torchscript"):
        with pytest.raises(UnsupportedOpError) as err:
            export_onnx(Svd().eval(), _x(), OnnxConfig(exporter=exporter, fallback=True), out=out)
        msg = str(err.value)
        assert "svd" in msg and "spectral (_SpectralNorm)" in msg and "also failed" in msg
    assert not out.exists()                  # nothing half-written: the folder this run created is gone too


def test_fallback_only_when_asked_and_recorded(tmp_path):
    res = export_onnx(flow_warp(), _x(), OnnxConfig(exporter="torchscript", opset=11, fallback=True), out=tmp_path)
    assert res.details["exporter"] == "dynamo" and res.details["opset"] >= 16
    assert any("fell back from the torchscript exporter to dynamo" in w for w in res.warnings)
    assert any("asked for opset 11" in w for w in res.warnings)
    assert res.parity.max_abs < 1e-4 and res.op_histogram["GridSample"] == 1


def test_parity_error_names_output_and_leaves_nothing(tmp_path):
    class Noisy(torch.nn.Module):
        """Random output: torch and ONNX Runtime draw different numbers, so parity must fail."""

        def forward(self, x):
            return x + torch.rand_like(x)

    with pytest.raises(ParityError) as err:
        export_onnx(Noisy(), _x(), OnnxConfig(exporter="torchscript", opset=17, output_names=("noisy_out",)),
                    out=tmp_path)
    assert "'noisy_out'" in str(err.value) and "tolerance" in str(err.value)
    assert _files(tmp_path) == []


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(ArtifactError, match="cannot create output folder"):
        export_onnx(plain_cnn(), _x(), OnnxConfig(exporter="torchscript", opset=17), out=blocker / "sub")
    assert _files(tmp_path) == ["file.txt"]


def test_bad_config():
    with pytest.raises(ConfigError, match="dynamo, torchscript"):
        OnnxConfig(exporter="tf2onnx")
    with pytest.raises(ConfigError, match="opset"):
        OnnxConfig(opset=99)
    with pytest.raises(ConfigError, match="nn.Module"):
        export_onnx("model.pt", _x())
