"""Quantization on real data (sklearn digits_data): INT8 static through both backends, FP16 parity, bad input, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgedeploy.compress.quantize import QuantConfig, quantize, valid_pairs  # noqa: E402
from edgedeploy.errors import CalibrationError, ConfigError  # noqa: E402


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_int8_static_within_one_point(backend, fp32_onnx, digits_data, tmp_path):
    res = quantize(fp32_onnx, QuantConfig(mode="int8-static", backend=backend), calibration=digits_data.x_train,
                   eval_data=(digits_data.x_test, digits_data.y_test), out=tmp_path)
    rep = res.report
    assert rep.accuracy_before > 95.0
    assert rep.accuracy_drop <= 1.0, str(rep)
    assert rep.size_after_bytes < rep.size_before_bytes / 2          # int8 weights
    assert [lr.precision for lr in rep.layers] == ["int8"] * 6       # 5 convs + fc, all int8
    assert all(lr.sqnr_db is not None and lr.sqnr_db > 20 for lr in rep.layers), str(rep)
    assert rep.energy_after_pj < rep.energy_before_pj / 10          # 0.3 vs 4.6 pJ per MAC
    assert rep.latency_before_ms > 0 and rep.latency_after_ms > 0
    # the artifact runs on its runtime and gives the reported accuracy
    from edgedeploy.runtime import load

    logits = load(res.path, runtime=backend).run(digits_data.x_test.numpy())[0]
    acc = 100.0 * np.mean(logits.argmax(1) == digits_data.y_test.numpy())
    assert acc == pytest.approx(rep.accuracy_after, abs=0.25)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest[res.path.name]["stage"] == f"quantize-int8-static-{backend}"
    assert res.path.name in manifest[res.path.name]["sha256"]
    assert json.loads((tmp_path / "quant_report.json").read_text())["accuracy_drop"] == rep.accuracy_drop


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_fp16_parity(backend, trained_digits_cnn, digits_data, tmp_path):
    res = quantize(trained_digits_cnn, QuantConfig(mode="fp16", backend=backend), eval_data=(digits_data.x_test, digits_data.y_test),
                   out=tmp_path)
    rep = res.report
    assert rep.output_max_abs_error < 0.05, str(rep)                 # fp16 rounding on ~10-magnitude logits
    assert rep.output_cosine_min > 0.9999
    assert abs(rep.accuracy_drop) <= 0.25
    assert rep.size_after_bytes < 0.6 * rep.size_before_bytes
    assert {lr.precision for lr in rep.layers} == {"fp16"}


def test_int8_dynamic_and_ignored_layer(fp32_onnx, digits_data, tmp_path):
    res = quantize(fp32_onnx, QuantConfig(mode="int8-static", ignored=("fc", "/stem/stem.0/Conv")),
                   calibration=digits_data.x_train[:128], eval_data=(digits_data.x_test, digits_data.y_test), out=tmp_path,
                   latency=False)
    precisions = {lr.module: lr.precision for lr in res.report.layers}
    assert precisions["fc"] == "fp32" and precisions["stem.0"] == "fp32" and precisions["res.0"] == "int8"
    assert res.report.accuracy_drop <= 1.0


def test_valid_pairs_listed():
    pairs = valid_pairs()
    for p in ("int8-static/onnxruntime", "int8-dynamic/onnxruntime", "fp16/openvino", "int8-static/openvino",
              "qat/torch", "fp16/onnxruntime"):
        assert p in pairs


# ---- bad input: one clear error each ---------------------------------------------------------------------------
def test_static_without_calibration(fp32_onnx, tmp_path):
    with pytest.raises(CalibrationError, match="needs calibration data"):
        quantize(fp32_onnx, QuantConfig(mode="int8-static"), out=tmp_path)


def test_mode_backend_pair_that_does_not_exist(fp32_onnx, tmp_path):
    with pytest.raises(ConfigError, match="not available with backend 'openvino'.*int8-dynamic/onnxruntime"):
        quantize(fp32_onnx, QuantConfig(mode="int8-dynamic", backend="openvino"), out=tmp_path)
    with pytest.raises(ConfigError, match="unknown quantizer backend 'tensorrt'.*int8-static/openvino"):
        quantize(fp32_onnx, QuantConfig(backend="tensorrt"), out=tmp_path)
    with pytest.raises(ConfigError, match="unknown quantization mode 'int4'"):
        QuantConfig(mode="int4")


def test_calibration_of_wrong_shape(fp32_onnx, tmp_path):
    wrong = np.zeros((16, 1, 8, 8), np.float32)
    with pytest.raises(CalibrationError, match=r"input 'input' has shape 16x1x8x8.*Nx1x16x16"):
        quantize(fp32_onnx, QuantConfig(), calibration=wrong, out=tmp_path)
    from edgedeploy.zoo.digits import DigitsCNN

    with pytest.raises(CalibrationError, match=r"shape 16x1x8x8.*Nx1x16x16"):       # a torch module too
        quantize(DigitsCNN(), QuantConfig(), calibration=wrong, example_inputs=torch.zeros(1, 1, 16, 16),
                 out=tmp_path / "m")


def test_ignored_layer_that_does_not_exist(fp32_onnx, digits_data, tmp_path):
    with pytest.raises(ConfigError, match=r"'stem\.9' not found.*stem\.0 \(/stem/stem\.0/Conv\)"):
        quantize(fp32_onnx, QuantConfig(ignored=("stem.9",)), calibration=digits_data.x_train[:64], out=tmp_path)


def test_cli_quantize_openvino(fp32_onnx, tmp_path, capsys):
    from edgedeploy.cli import main

    rc = main(["quantize", str(fp32_onnx), "--mode", "int8-static", "--backend", "openvino", "--calib", "digits",
               "--out", str(tmp_path)])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert rc == 0, text
    assert "top-1" in text and "res.3" in text and "int8" in text and (tmp_path / "model_int8.xml").exists()
    report = json.loads((tmp_path / "quant_report.json").read_text())
    assert report["backend"] == "openvino" and report["accuracy_drop"] <= 1.0


def test_cli_bad_pair_is_one_line(fp32_onnx, tmp_path, capsys):
    from edgedeploy.cli import main

    rc = main(["quantize", str(fp32_onnx), "--mode", "int8-dynamic", "--backend", "openvino", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert rc == 2 and "valid mode/backend pairs" in text and "Traceback" not in text
