"""The trained gaze corrector through both ONNX exporters, ONNX Runtime parity and an FP16 IR with FP32 islands."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgedeploy.export.fp32_islands import keep_fp32_islands
from edgedeploy.export.onnx import OnnxConfig, export_onnx
from edgedeploy.export.openvino import OpenVinoConfig, export_openvino
from edgedeploy.runtime import load
from edgedeploy.zoo.gaze import GazeTrainConfig, make_pairs, pretrained_gaze

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def corrector():
    return pretrained_gaze(GazeTrainConfig.quick(), progress=False)


@pytest.fixture(scope="module")
def held_out():
    x = make_pairs(4, seed=77).inputs
    return [x[i:i + 1] for i in range(4)]


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_both_exporters_give_a_checked_onnx_with_parity(corrector, held_out, tmp_path, exporter):
    cfg = OnnxConfig(exporter=exporter, opset=16 if exporter == "torchscript" else None)
    result = export_onnx(corrector, torch.from_numpy(held_out[0]), cfg, out=tmp_path, name="gaze")
    assert result.details["opset"] >= 16 and result.op_histogram["GridSample"] == 2
    assert result.op_histogram["Softmax"] == 2 and result.op_histogram["Tanh"] == 2
    assert "Range" not in result.op_histogram          # the 48x64 sampling grid is a frozen constant
    session = load(result.path, runtime="onnxruntime", threads=1)
    for x in held_out:                                 # inputs the export never saw
        with torch.no_grad():
            ref = corrector(torch.from_numpy(x)).numpy()
        got = session.run(x)[0]
        assert float(np.abs(got - ref).max()) < 1e-2   # grey levels 0-255


def test_openvino_fp32_ir_and_fp16_ir_with_islands(corrector, held_out, tmp_path):
    import openvino as ov

    onnx = export_onnx(corrector, torch.from_numpy(held_out[0]), OnnxConfig(), out=tmp_path, name="gaze")
    ir = export_openvino(onnx.path, OpenVinoConfig(precision="fp32", input_type="f32"), out=tmp_path, name="gaze32")
    assert ir.parity is not None and ir.parity.max_abs < 1e-2
    islands = keep_fp32_islands(ov.convert_model(str(onnx.path)), held_out)
    xml = tmp_path / "gaze16.xml"
    ov.save_model(islands.model, str(xml), compress_to_fp16=True)
    session = load(xml, runtime="openvino", threads=1, precision_hint="f32")
    for x in held_out:
        with torch.no_grad():
            ref = corrector(torch.from_numpy(x)).numpy()
        got = session.run(x)[0]
        assert float(np.abs(got - ref).max()) <= 1e-2 * float(ref.max() - ref.min())
    assert islands.err_after < islands.err_before
    assert (tmp_path / "gaze16.bin").stat().st_size < 0.6 * (tmp_path / "gaze32.bin").stat().st_size
