"""profile() on an .onnx file gives the same table as on the torch model."""
from __future__ import annotations

import pytest
import torch

from edgedeploy.errors import ModelLoadError, ShapeError
from edgedeploy.metrics.profile import profile
from edgedeploy.zoo.digits import DigitsCNN
from edgedeploy.zoo.reference import MobileNetV2


def _export(model: torch.nn.Module, shape: tuple[int, ...], path, dynamic: bool = False) -> str:
    kw = {"dynamic_axes": {"x": {0: "batch"}}} if dynamic else {}
    torch.onnx.export(model.eval(), (torch.zeros(shape),), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], **kw)
    return str(path)


def test_onnx_matches_torch(tmp_path) -> None:
    m = MobileNetV2()
    onnx_p = profile(_export(m, (1, 3, 96, 96), tmp_path / "m.onnx"))
    torch_p = profile(m, (1, 3, 96, 96))
    assert onnx_p.source == "onnx"
    assert onnx_p.macs == torch_p.macs                           # BN is folded into conv by the exporter
    # ONNX stores no BN parameters (folded) but adds conv biases; conv weights agree
    assert onnx_p.params == pytest.approx(torch_p.params, rel=0.02)
    assert {r.op for r in onnx_p.layers} >= {"Conv", "Clip", "Add", "Gemm"}


def test_onnx_dynamic_batch_needs_and_takes_a_shape(tmp_path) -> None:
    path = _export(DigitsCNN(), (1, 1, 16, 16), tmp_path / "d.onnx", dynamic=True)
    with pytest.raises(ShapeError, match="unknown shape"):
        profile(path)
    p4 = profile(path, (4, 1, 16, 16))
    assert p4.macs == 4 * profile(DigitsCNN(), (1, 1, 16, 16)).macs


def test_onnx_bad_files(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        profile(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not an onnx file at all")
    with pytest.raises(ModelLoadError, match="cannot read ONNX file"):
        profile(bad)
    path = _export(DigitsCNN(), (1, 1, 16, 16), tmp_path / "d.onnx")
    with pytest.raises(ShapeError, match="does not match"):
        profile(path, (1, 3, 16, 16))
