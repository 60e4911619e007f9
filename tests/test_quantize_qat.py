"""QAT recovers what PTQ loses, mixed precision meets its budget, FP16-aware training lowers export error."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgedeploy.compress.quantize import QuantConfig, quantize  # noqa: E402
from edgedeploy.compress.quantize.sensitivity import mixed_precision  # noqa: E402
from edgedeploy.zoo.digits import train_classifier  # noqa: E402

# The honest hard case: a 3-bit per-tensor weight grid (stored in int8 QDQ, so the model runs as INT8).
# Per-tensor scales of BN-folded convs leave most channels with a handful of levels: PTQ loses points.
LOW_BIT = dict(backend="torch", per_channel=False, weight_bits=3)




def test_qat_recovers_where_ptq_loses(trained_digits_cnn, digits_data, tmp_path):
    ev = (digits_data.x_test, digits_data.y_test)
    ptq = quantize(trained_digits_cnn, QuantConfig(mode="int8-static", **LOW_BIT), calibration=digits_data.x_train, eval_data=ev,
                   out=tmp_path / "ptq", latency=False).report
    qat_res = quantize(trained_digits_cnn, QuantConfig(mode="qat", qat_epochs=3, **LOW_BIT), calibration=digits_data.x_train,
                       train_data=(digits_data.x_train, digits_data.y_train), eval_data=ev, out=tmp_path / "qat", latency=False)
    qat = qat_res.report
    assert ptq.accuracy_drop > 3.0, str(ptq)                 # PTQ loses accuracy here ...
    assert qat.accuracy_drop <= 1.0, str(qat)                # ... QAT recovers it
    assert qat.accuracy_after > ptq.accuracy_after + 3.0
    # the exported model is a real INT8 QDQ ONNX: int8 weight tensors on a 3-bit grid, and it runs on both runtimes
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(qat_res.path))
    int8 = [numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8
            and len(t.dims) >= 2]
    assert len(int8) == 6 and all(np.abs(w).max() <= 3 for w in int8)
    assert sum(n.op_type == "DequantizeLinear" for n in model.graph.node) >= 12
    assert qat.size_after_bytes < qat.size_before_bytes / 3
    import openvino as ov

    from edgedeploy.runtime import load

    ov.save_model(ov.convert_model(str(qat_res.path)), str(tmp_path / "qat.xml"))
    for path, rt in ((qat_res.path, "onnxruntime"), (tmp_path / "qat.xml", "openvino")):
        logits = load(path, runtime=rt).run(digits_data.x_test.numpy())[0]
        acc = 100.0 * np.mean(logits.argmax(1) == digits_data.y_test.numpy())
        assert acc == pytest.approx(qat.accuracy_after, abs=0.5), rt


def test_mixed_precision_meets_budget(trained_digits_cnn, digits_data, tmp_path, capsys):
    budget = 1.0
    res = mixed_precision(trained_digits_cnn, QuantConfig(mode="int8-static", **LOW_BIT), calibration=digits_data.x_train,
                          eval_data=(digits_data.x_test, digits_data.y_test), budget=budget, out=tmp_path)
    rep = res.report
    precisions = [lr.precision for lr in rep.layers]
    assert rep.accuracy_drop <= budget, str(rep)
    assert "fp32" in precisions and "int8" in precisions          # some layers kept, the rest quantized
    assert rep.energy_after_pj < rep.energy_before_pj
    kept = [lr for lr in rep.layers if lr.precision == "fp32"]
    ranked = sorted((lr for lr in rep.layers if lr.sensitivity is not None), key=lambda lr: -lr.sensitivity)
    assert {lr.name for lr in kept} == {lr.name for lr in ranked[:len(kept)]}   # the most sensitive ones
    out = capsys.readouterr().out
    assert "sensitivity" in out and "res.0" in out


def test_fp16_aware_training_lowers_export_error(trained_digits_cnn, digits_data):
    import copy

    from edgedeploy.compress.quantize.fp16_training import (disable_fp16_rounding, fp16_export_error,
                                                            prepare_fp16_training)

    x = digits_data.x_test
    plain = fp16_export_error(trained_digits_cnn, x)                     # FP16 ONNX vs the FP32 model it came from
    aware = prepare_fp16_training(trained_digits_cnn)
    train_classifier(aware, digits_data, epochs=1, lr=1e-4)
    baked = disable_fp16_rounding(copy.deepcopy(aware))
    w = baked.get_submodule("stem.0").weight.detach()
    assert torch.equal(w, w.half().float())                   # weights sit on the float16 grid
    after = fp16_export_error(baked, x)                       # FP16 ONNX vs the FP16-aware model (no rounding hooks)
    assert plain["max_abs"] > 1e-3                            # plain: fp16 weight rounding shows in the logits
    assert after["max_abs"] < plain["max_abs"] / 100, (plain, after)
    assert fp16_export_error(aware, x)["max_abs"] < 2 * plain["max_abs"]   # the rounded forward stays close too
