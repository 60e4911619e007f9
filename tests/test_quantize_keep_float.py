"""QuantConfig(keep_float=N): the N most sensitive layers, chosen on calibration data, stay in float."""
from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("onnxruntime")

from edgedeploy.compress.quantize import QuantConfig, quantize
from edgedeploy.errors import CalibrationError, ConfigError


def test_keep_float_keeps_the_most_sensitive_layer(fp32_onnx, digits_data, tmp_path):
    from edgedeploy import data as qdata
    from edgedeploy.compress.quantize import graph
    from edgedeploy.onnx_utils import onnx_inputs
    from edgedeploy.compress.quantize.keep_float import rank_float_candidates
    from edgedeploy.compress.quantize.registry import Job, get_quantizer

    calib, ev = digits_data.x_train[:128], (digits_data.x_test, digits_data.y_test)
    cfg = QuantConfig(mode="int8-static", keep_float=1)
    res = quantize(fp32_onnx, cfg, calibration=calib, eval_data=ev, out=tmp_path / "q", latency=False)
    rep = res.report
    kept = [lr for lr in rep.layers if lr.precision == "fp32"]
    assert len(kept) == 1 and sum(lr.precision == "int8" for lr in rep.layers) == 5, str(rep)
    assert rep.accuracy_drop <= 1.0, str(rep)
    assert any(n.startswith("keep_float=1: chose by sensitivity on 128 calibration samples") and kept[0].module in n
               for n in rep.notes), rep.notes
    # the kept layer is the top of the ranking on the calibration data, and keeping it beats keeping none
    ort_q = get_quantizer("onnxruntime", "int8-static")
    layers = graph.layers(fp32_onnx)
    feeds = qdata.to_feeds(calib, onnx_inputs(fp32_onnx), "calibration", limit=300)
    job = Job(cfg, fp32_onnx, None, feeds, [], [], None, tmp_path)
    ranking = rank_float_candidates(ort_q, job, layers)
    assert len(ranking) == 6 and ranking[0].layer == kept[0].name
    assert [c.cosine_mean for c in ranking] == sorted((c.cosine_mean for c in ranking), reverse=True)
    assert rank_float_candidates(ort_q, job, layers) == ranking                          # deterministic
    assert rank_float_candidates(ort_q, dataclasses.replace(job, ignored_nodes=[kept[0].name]),
                                 layers)[0].layer != kept[0].name                      # ignored ones are skipped
    plain = quantize(fp32_onnx, QuantConfig(mode="int8-static"), calibration=calib, eval_data=calib[:128],
                     out=tmp_path / "plain", per_layer=False, latency=False).report
    assert ranking[0].cosine_mean >= plain.output_cosine - 1e-6


def test_keep_float_with_an_ignored_layer_adds_to_it(fp32_onnx, digits_data, tmp_path):
    res = quantize(fp32_onnx, QuantConfig(mode="int8-dynamic", ignored=("fc",), keep_float=1),
                   calibration=digits_data.x_train[:64], out=tmp_path, per_layer=False, latency=False)
    kept = sorted(lr.module for lr in res.report.layers if lr.precision == "fp32")
    assert len(kept) == 2 and "fc" in kept


def test_keep_float_bad_input(fp32_onnx, digits_data, tmp_path):
    with pytest.raises(ConfigError, match="keep_float must be >= 0"):
        QuantConfig(keep_float=-1)
    with pytest.raises(ConfigError, match="keep_float works with modes int8-static and int8-dynamic.*'fp16'"):
        QuantConfig(mode="fp16", keep_float=1)
    with pytest.raises(CalibrationError, match="keep_float needs calibration data"):
        quantize(fp32_onnx, QuantConfig(mode="int8-dynamic", keep_float=1), out=tmp_path)
    with pytest.raises(ConfigError, match="keep_float=7 but the model has only 6 quantizable"):
        quantize(fp32_onnx, QuantConfig(keep_float=7), calibration=digits_data.x_train[:32], out=tmp_path)


def test_cli_keep_float(tmp_path, capsys):
    from edgedeploy.cli import main

    rc = main(["quantize", "digits-cnn", "--pretrained", "--input", "1x1x16x16", "--calib", "digits",
               "--keep-float", "1", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "keep_float=1" in text and (tmp_path / "quant_report.json").is_file()
