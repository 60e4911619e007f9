"""Staged early-exit deployment: one ONNX / OpenVINO model per stage, a driver that stops early on the runtime
(batch compaction included), parity with torch on real digits."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from edgedeploy.compress.early_exit import (ExitTrainConfig, StagedExportConfig, StagedRunner, add_early_exits,
                                            calibrate_thresholds, export_staged, train_exits)
from edgedeploy.compress.early_exit.runner import main
from edgedeploy.errors import ArtifactError, ConfigError


@pytest.fixture(scope="module")
def calibrated(trained_digits_cnn, digits_data):
    """The trained digits CNN with exits after 'down' and 'res' (skip connection), thresholds for <= 1 pt drop."""
    torch.manual_seed(0)
    h = len(digits_data.x_test) // 2
    model = add_early_exits(trained_digits_cnn, ["down", "res"], example_inputs=digits_data.x_train[:8],
                            head="conv-pool-linear")
    train_exits(model, digits_data.train, ExitTrainConfig(mode="heads", epochs=3), progress=False)
    calibrate_thresholds(model, (digits_data.x_test[:h], digits_data.y_test[:h]), max_accuracy_drop=1.0)
    return model, digits_data.x_test[h:]


@pytest.fixture(scope="module")
def exported(calibrated, tmp_path_factory):
    model, x = calibrated
    return export_staged(model, x[:16], out=tmp_path_factory.mktemp("staged"))


def test_export_writes_one_model_per_stage_with_parity(exported, calibrated):
    model, _ = calibrated
    names = sorted(p.name for p in exported.folder.iterdir() if not p.name.startswith("."))
    assert names == ["early_exit.json", "manifest.json", "stage1.bin", "stage1.onnx", "stage1.xml", "stage2.bin",
                     "stage2.onnx", "stage2.xml", "stage3.bin", "stage3.onnx", "stage3.xml"]
    spec = json.loads(exported.spec.read_text())
    assert spec["thresholds"] == model.thresholds.tolist() and spec["stage_macs"] == model.stage_macs
    assert [s["inputs"] for s in spec["stages"]] == [["input"], ["down"], ["down", "res"]]
    assert [s["outputs"] for s in spec["stages"]] == [["down_next", "logits"], ["down_next", "res_next", "logits"],
                                                      ["logits"]]
    for rt in ("onnxruntime", "openvino"):
        par = exported.parity[rt]
        assert max(s["max_abs"] for s in par["stages"]) < 1e-4
        d = par["decisions"]
        assert d["samples"] == 48 and d["labels_equal"] == d["exits_equal"] == 48 - d["borderline"]
        assert d["borderline"] == 0 and d["confidence_max_abs"] < 1e-5
    manifest = json.loads((exported.folder / "manifest.json").read_text())
    assert manifest["early_exit.json"]["stage"] == "early_exit" and "stage2.onnx" in manifest


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_staged_runtime_stops_early_and_matches_torch(exported, calibrated, runtime):
    model, x = calibrated
    ref = model.predict(x)
    runner = exported.runner(runtime, threads=1)
    got = runner.predict(x.numpy())
    np.testing.assert_array_equal(got.labels, ref.labels)
    np.testing.assert_array_equal(got.exits, ref.exits)
    np.testing.assert_allclose(got.confidence, ref.confidence, atol=1e-5)
    assert got.stage_samples == ref.stage_samples and got.stage_samples[2] < len(x)   # later stages skipped
    assert got.runtime == runtime and got.executed_macs == ref.executed_macs < len(x) * model.full_macs
    batched = runner.predict(x.numpy(), batch_size=8)                 # compaction inside every batch of 8
    np.testing.assert_array_equal(batched.exits, ref.exits)
    np.testing.assert_array_equal(batched.labels, ref.labels)
    one = [runner.predict(x[i:i + 1].numpy()) for i in range(24)]
    np.testing.assert_array_equal(np.concatenate([p.exits for p in one]), ref.exits[:24])


def test_runner_command_line_prints_the_tutorial_lines(exported, calibrated, tmp_path, capsys):
    _, x = calibrated
    np.save(tmp_path / "x.npy", x[:5].numpy())
    assert main([str(exported.folder), str(tmp_path / "x.npy"), "--runtime", "openvino", "--batch-size", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(re.fullmatch(r"PREDICTED LABEL: \d CONFIDENCE: \d\.\d{3}, EXIT: [123]", ln) for ln in lines[:5])
    assert lines[5].startswith("# 5 samples, exit histogram [")
    (tmp_path / "bad.npy").write_text("not an array")
    for args, needle in (([str(tmp_path / "none.npy")], "does not exist"), ([str(tmp_path / "bad.npy")], ".npy"),
                         ([str(tmp_path / "x.npy"), "--threads", "0"], None)):
        rc = main([str(exported.folder)] + args)
        err = capsys.readouterr().err
        if needle:
            assert rc == 2 and err.startswith("error:") and needle in err and "Traceback" not in err
    assert main([str(tmp_path), str(tmp_path / "x.npy")]) == 2
    assert "early_exit.json" in capsys.readouterr().err


def test_runner_needs_no_torch(exported):
    code = ("import sys, numpy as np\nfrom edgedeploy.compress.early_exit.runner import StagedRunner\n"
            f"r = StagedRunner({str(exported.folder)!r})\n"
            "p = r.predict(np.zeros((2, 1, 16, 16), np.float32))\nprint(len(p), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["2", "False"]


def test_runner_errors(exported, tmp_path):
    with pytest.raises(ArtifactError, match="export_staged"):
        StagedRunner(tmp_path)
    with pytest.raises(ConfigError, match="2 thresholds"):
        StagedRunner(exported.folder, thresholds=[0.5])
    with pytest.raises(ConfigError, match="runtime"):
        StagedRunner(exported.folder, runtime="tflite")
    with pytest.raises(ConfigError, match="staged runtime"):
        StagedExportConfig(runtimes=("qnn",))


def test_static_batch_one_stages(calibrated, tmp_path):
    model, x = calibrated
    res = export_staged(model, x[:4], out=tmp_path, config=StagedExportConfig(
        runtimes=("onnxruntime",), exporter="torchscript", dynamic_batch=False))
    assert not (tmp_path / "stage1.xml").exists()
    got = res.runner("onnxruntime").predict(x[:32].numpy())
    np.testing.assert_array_equal(got.exits, model.predict(x[:32]).exits)
    assert got.stage_calls[0] == 32                                  # one sample per call


def test_a_failed_check_leaves_nothing_in_out(calibrated, tmp_path, monkeypatch):
    """All or nothing: the stages are verified in a staging folder and published only when every runtime agrees."""
    from edgedeploy.compress.early_exit import export as staged_export
    from edgedeploy.errors import ParityError

    def disagree(*args, **kwargs):
        raise ParityError("stage2.onnx differs from torch on onnxruntime (max abs 0.5)")

    model, x = calibrated
    monkeypatch.setattr(staged_export, "compare_outputs", disagree)
    out = tmp_path / "ee"
    with pytest.raises(ParityError, match="stage2.onnx"):
        export_staged(model, x[:4], out=out, config=StagedExportConfig(runtimes=("onnxruntime",)))
    assert not out.exists() or not any(out.iterdir())
