"""Qualcomm HTP path: QNN QDQ quantization, offline context binaries, parity on the QNN HTP backend (emulated).

Real data: scikit-learn's handwritten digits. The HTP backend runs in x86 emulation (onnxruntime-qnn).
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.errors import (CalibrationError, ConfigError, EdgeDeployError, ParityError, ToolchainError,
                               UnsupportedOpError)

pytest.importorskip("onnxruntime_qnn")

from edgedeploy.compress.quantize import qnn_qdq as qnn_quant  # noqa: E402
from edgedeploy.compress.quantize.qnn import export_qnn, qnn_unsupported_ops  # noqa: E402
from edgedeploy.export.qnn import QnnConfig, agreement  # noqa: E402
from edgedeploy.runtime import qnn_provider as qnn_ep  # noqa: E402


def _all(captured) -> str:
    """stdout and stderr of a CLI run (errors are printed on stderr)."""
    return captured.out + captured.err


@pytest.fixture(scope="module")
def u8_export(trained_digits_cnn, digits_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("qnn_u8")
    return export_qnn(trained_digits_cnn, QnnConfig(soc_model="SM8650", activations="u8"),
                      calibration=digits_data.x_train[:128],
                      eval_data=(digits_data.x_test[:150], digits_data.y_test[:150]), out=out)


def _digits_onnx(model, folder):
    """The trained digits CNN as a plain opset-17 ONNX file (what a user would bring)."""
    path = folder / "digits.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 1, 16, 16),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"])
    return path


def _torch_agreement(model, x, logits):
    with torch.no_grad():
        ref = model(torch.as_tensor(x)).numpy()
    return float(np.mean(ref.argmax(1) == np.asarray(logits).argmax(1)))


def test_u8_context_model_agrees_with_torch_on_real_digits(u8_export, trained_digits_cnn, digits_data):
    r = u8_export
    assert r.format == "qnn" and r.path.name.endswith("_ctx.onnx") and r.path.is_file()
    names = {f.name for f in r.files}
    assert {"digitscnn.onnx", "digitscnn_qdq.onnx", "digitscnn_ctx.onnx"} <= names
    assert qnn_ep.is_qnn_context_model(r.path)
    assert not qnn_ep.is_qnn_context_model(r.path.with_name("digitscnn_qdq.onnx"))
    d = r.details
    assert d["eval_samples"] == 150 and d["htp_arch"] == 75 and d["soc_model"] == "57"
    assert d["vs_torch"]["agreement"] >= 0.95
    assert d["vs_cpu_qdq"]["agreement"] >= 0.95
    assert d["top1"]["htp"] >= 0.95
    assert d["context_vs_uncompiled_max_abs"] == 0.0          # the compiled context is bit-identical
    assert r.parity.max_abs == d["vs_torch"]["max_abs"] and 0 < r.parity.max_rel <= 0.5
    manifest = json.loads(r.manifest.read_text())[r.path.name]
    assert set(manifest["sha256"]) == names and manifest["config"]["provider_options"]["soc_model"] == "57"
    assert not [p for p in r.path.parent.iterdir() if p.name.startswith(".")]   # no staging left behind


def test_load_and_run_context_model_on_htp(u8_export, trained_digits_cnn, digits_data):
    from edgedeploy.runtime import load

    with pytest.warns(UserWarning, match="emulation"):
        session = load(u8_export.path, runtime="qnn")
    assert session.is_context_model
    x = digits_data.x_test[150:182].numpy()
    logits = np.concatenate([session.run(x[i:i + 1])[0] for i in range(len(x))])
    assert _torch_agreement(trained_digits_cnn, x, logits) >= 0.95
    with pytest.raises(EdgeDeployError):            # the CPU EP alone cannot run a QNN context model
        load(u8_export.path, runtime="onnxruntime")
    with pytest.warns(UserWarning, match="emulation"):
        assert load(u8_export.path).name == "qnn"   # recognised by content, not by the .onnx suffix


def test_u16_separate_context_binary_is_closer_to_cpu_qdq(u8_export, trained_digits_cnn, digits_data, tmp_path):
    r = export_qnn(trained_digits_cnn, QnnConfig(soc_model="SM8750", activations="u16", embed=False),
                   calibration=digits_data.x_train[:128],
                   eval_data=(digits_data.x_test[:150], digits_data.y_test[:150]), out=tmp_path)
    binary = tmp_path / "digitscnn_ctx_qnn.bin"
    assert binary.is_file() and binary in r.files
    assert r.path.stat().st_size < 4096 < binary.stat().st_size      # a small _ctx.onnx pointing at the binary
    assert r.details["htp_arch"] == 79
    assert r.details["vs_torch"]["agreement"] >= 0.98
    assert r.details["vs_cpu_qdq"]["max_abs"] < u8_export.details["vs_cpu_qdq"]["max_abs"]
    assert r.details["context_bytes"] == r.path.stat().st_size + binary.stat().st_size


class _Wrap(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fmod(x, 0.7)


class _ModNet(nn.Module):
    """Conv -> fmod (QNN HTP rejects Mod with fmod=1) -> conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.wrap = _Wrap()
        self.head = nn.Conv2d(4, 10, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.wrap(self.conv(x))).mean((2, 3))


def test_rejected_op_is_named_with_its_module_and_nothing_is_written(digits_data, tmp_path):
    with pytest.raises(UnsupportedOpError) as err:
        export_qnn(_ModNet().eval(), QnnConfig(activations="u8"), calibration=digits_data.x_train[:16],
                   out=tmp_path)
    msg = str(err.value)
    assert "Mod" in msg and "wrap" in msg and "fmod" in msg and "u16" in msg
    assert [n.op_type for n in err.value.nodes] == ["Mod"]
    assert list(tmp_path.iterdir()) == []


def test_parse_unsupported_reads_ort_verbose_log():
    log = ("... LogNodeSupport] Validation FAILED for 1 nodes in OrtNodeUnit (NonZero) :\n"
           "\tOperator type: NonZero Node name: /NonZero Node index: 2\n"
           "\tREASON : NonZero output shape must be static.\n"
           "... LogNodeSupport] Validation PASSED for 1 nodes in OrtNodeUnit (Add) :\n"
           "Unsupported nodes in QNN EP: { name: /NonZero, type: NonZero }{ name: /Cast, type: Cast }\n")
    nodes = qnn_ep.parse_unsupported(log)
    assert [(n.op_type, n.name) for n in nodes] == [("NonZero", "/NonZero"), ("Cast", "/Cast")]
    assert nodes[0].reason == "NonZero output shape must be static"


@pytest.mark.parametrize("kwargs, fragment", [
    ({"soc_model": "SM9999"}, "unknown Snapdragon SoC 'SM9999'"),
    ({"soc_model": None, "htp_arch": 99}, "unknown htp_arch 99"),
    ({"soc_model": "SM8650", "htp_arch": 79}, "does not match soc_model"),
    ({"provider_options": {"htp_perf_mode": "burst"}}, "unknown QNN provider option 'htp_perf_mode'"),
    ({"performance_mode": "turbo"}, "htp_performance_mode='turbo' is invalid"),
    ({"activations": "int4"}, "unknown QNN activations"),
    ({"soc_model": None, "htp_arch": 75, "activations": "fp16"}, "needs a soc_model"),
])
def test_bad_config_is_rejected_before_any_work(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(")):
        QnnConfig(**kwargs)


def test_soc_ids_and_arch_spellings():
    assert qnn_ep.resolve_soc("57") == ("SM8650", 57, 75) == qnn_ep.resolve_soc("sm8650")
    assert QnnConfig(soc_model=None, htp_arch="v73").provider() == {"backend_type": "htp", "htp_arch": "73"}


def test_missing_calibration_is_a_clear_error(trained_digits_cnn, tmp_path):
    with pytest.raises(CalibrationError, match="calibration"):
        export_qnn(trained_digits_cnn, QnnConfig(activations="u16"), example_inputs=torch.zeros(1, 1, 16, 16),
                   out=tmp_path)
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_missing_plugin_and_old_glibc_name_the_fix(monkeypatch):
    import sys

    monkeypatch.setattr(qnn_ep, "_registered", [])
    monkeypatch.setitem(sys.modules, "onnxruntime_qnn", None)
    with pytest.raises(ToolchainError, match="pip install onnxruntime-qnn"):
        qnn_ep.ensure_qnn()
    monkeypatch.setattr(qnn_ep.platform, "libc_ver", lambda: ("glibc", "2.31"))
    with pytest.raises(ToolchainError, match="glibc >= 2.35"):
        qnn_ep.ensure_qnn()


def test_mixed_precision_moves_activations_to_u16_until_the_budget_is_met(trained_digits_cnn, digits_data, tmp_path):
    from edgedeploy.data import to_feeds
    from edgedeploy.onnx_utils import onnx_inputs

    onnx_path = _digits_onnx(trained_digits_cnn, tmp_path)
    specs = onnx_inputs(onnx_path)
    # two over-exposed frames among the calibration samples stretch every u8 range
    calib = torch.cat([digits_data.x_train[:62], digits_data.x_train[62:64] * 100])
    feeds = to_feeds(calib, specs, batch_size=1)
    held_out = to_feeds(digits_data.x_test[:200], specs, batch_size=1)
    choice = qnn_quant.choose_mixed(onnx_path, tmp_path / "mixed.onnx", feeds, held_out, budget=0.99)
    u8_agreement = choice.tried[0]["agreement"]
    assert choice.tried[0]["u16_activations"] == 0 and u8_agreement < 0.9
    assert choice.agreement >= 0.99 and choice.agreement >= u8_agreement
    assert 0 < len(choice.u16_tensors) <= choice.n_activations
    reference = qnn_quant.run_cpu(onnx_path, held_out)[0]
    got = qnn_quant.run_cpu(tmp_path / "mixed.onnx", held_out)[0]
    assert agreement(got, reference) == choice.agreement


def test_qnn_quantizer_backend(trained_digits_cnn, digits_data, tmp_path):
    from edgedeploy.compress.quantize.api import quantize
    from edgedeploy.compress.quantize.config import QnnQuantOptions, QuantConfig

    res = quantize(trained_digits_cnn, QuantConfig(backend="qnn", per_channel=False, qnn=QnnQuantOptions(activations="u16")),
                   calibration=digits_data.x_train[:128], eval_data=digits_data, out=tmp_path, per_layer=False)
    assert res.path.name == "model_qnn_u16.onnx"
    assert res.report.accuracy_before - res.report.accuracy_after < 1.0
    import onnx

    zero_points = [i for i in onnx.load(str(res.path)).graph.initializer if i.name.endswith("zero_point")]
    assert onnx.TensorProto.UINT16 in {z.data_type for z in zero_points}
    with pytest.raises(ConfigError, match="activations"):
        QnnQuantOptions(activations="s4")


def test_cli_compiles_an_onnx_file_with_digits_calibration(trained_digits_cnn, tmp_path, capsys):
    from edgedeploy.cli import main

    onnx_path = _digits_onnx(trained_digits_cnn, tmp_path)
    out = tmp_path / "qnn"
    rc = main(["qnn", str(onnx_path), "--soc", "SM8550", "--calib", "digits", "--activations", "u8",
               "--weights", "s8", "--samples", "64", "--out", str(out)])
    text = _all(capsys.readouterr())
    assert rc == 0, text
    assert (out / "digits_ctx.onnx").is_file() and "HTP context vs FP32" in text and "emulation" in text
    details = json.loads((out / "manifest.json").read_text())["digits_ctx.onnx"]["details"]
    assert details["htp_arch"] == 73 and details["vs_torch"]["agreement"] >= 0.95   # s8 per-channel weights
    rc = main(["qnn", str(onnx_path), "--soc", "SM1234", "--calib", "digits", "--out", str(tmp_path / "bad")])
    text = _all(capsys.readouterr())
    assert rc == 2 and "unknown Snapdragon SoC 'SM1234'" in text and "Traceback" not in text


@pytest.mark.slow
def test_fp16_on_htp_and_the_parity_gate(trained_digits_cnn, digits_data, tmp_path):
    r = export_qnn(trained_digits_cnn, QnnConfig(activations="fp16"), eval_data=digits_data, out=tmp_path / "fp16",
                   example_inputs=digits_data.x_test[:1])
    assert "digitscnn_qdq.onnx" not in {f.name for f in r.files}
    assert r.details["vs_torch"]["agreement"] == 1.0 and r.details["vs_torch"]["max_abs"] < 0.05
    with pytest.raises(ParityError, match="agrees with FP32 torch on only"):
        export_qnn(trained_digits_cnn, QnnConfig(activations="u8", min_agreement=1.0),
                   calibration=torch.cat([digits_data.x_train[:62], digits_data.x_train[62:64] * 100]),
                   eval_data=digits_data, out=tmp_path / "gate")
    assert not (tmp_path / "gate" / "digitscnn_ctx.onnx").exists()


@pytest.mark.slow
def test_mixed_default_export_meets_budget_on_htp(trained_digits_cnn, digits_data, tmp_path):
    r = export_qnn(trained_digits_cnn, QnnConfig(), calibration=digits_data.x_train[:128],
                   eval_data=digits_data, out=tmp_path)
    assert r.details["activations"] == "mixed" and r.details["mixed"]["calibration_agreement"] >= 0.99
    assert r.details["vs_torch"]["agreement"] >= 0.98


def test_default_soc_matches_the_qualcomm_htp_target_profile():
    from edgedeploy.targets.target import Target

    target = Target.load("qualcomm-htp")
    assert f"v{QnnConfig().provider()['htp_arch']}" == target.extras["hexagon_version"]
    assert {"int8", "int16", "fp16"} <= set(target.precisions)      # the precisions export_qnn produces


def test_op_check_without_export(trained_digits_cnn, tmp_path):
    nodes = qnn_unsupported_ops(_ModNet().eval(), torch.zeros(1, 1, 16, 16))
    assert [(n.op_type, n.module) for n in nodes] == [("Mod", "wrap (_Wrap)")]
    assert "fmod" in nodes[0].reason
    onnx_path = _digits_onnx(trained_digits_cnn, tmp_path)
    assert qnn_unsupported_ops(onnx_path, config=QnnConfig(soc_model="SM8750", activations="u16")) == []


def test_agreement_is_top1_for_logits_and_relative_error_otherwise():
    ref = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert agreement(np.array([[0.2, 0.8], [0.1, 0.9], [0.0, 1.0]]), ref) == pytest.approx(2 / 3)
    image = np.ones((4, 1, 8, 8))
    noisy = image.copy()
    noisy[0] *= 1.2                                     # 20% off on one sample, 1% on another
    noisy[1] *= 1.01
    assert agreement(noisy, image) == 0.75


def test_compile_an_existing_qdq_model_for_another_soc(u8_export, digits_data, tmp_path):
    from edgedeploy.export.qnn import compile_qnn_context
    from edgedeploy.runtime import load

    qdq = u8_export.path.with_name("digitscnn_qdq.onnx")
    dest = compile_qnn_context(qdq, tmp_path / "sm8550_ctx.onnx", QnnConfig(soc_model="SM8550", embed=False))
    assert dest.is_file() and (tmp_path / "sm8550_ctx_qnn.bin").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm8550_ctx.onnx", "sm8550_ctx_qnn.bin"]
    with pytest.warns(UserWarning):
        session = load(dest, runtime="qnn", soc_model="SM8550")
    x = digits_data.x_test[:1].numpy()
    assert session.run(x)[0].shape == (1, 10)


def test_check_against_qualcomm_htp_runs_the_qnn_op_check(trained_digits_cnn):
    from edgedeploy.targets.check import check

    bad = check(_ModNet().eval(), "qualcomm-htp", input_shape=(1, 1, 16, 16))
    assert bad["ops"].passed is False and "Mod" in bad["ops"].message and "wrap" in bad["ops"].message
    assert not bad.passed
    good = check(trained_digits_cnn, "qualcomm-htp", input_shape=(1, 1, 16, 16))
    assert good["ops"].passed is True and good.passed


def test_socs_come_from_the_target_profile():
    from edgedeploy.targets.target import Target

    table = Target.load("qualcomm-htp").extras["socs"]
    assert qnn_ep.resolve_soc("sm8650") == ("SM8650", table["SM8650"]["id"], table["SM8650"]["htp_arch"])
    assert qnn_ep.resolve_soc(69)[0] == "SM8750"


def test_export_cli_to_qnn(tmp_path, capsys):
    from edgedeploy.cli import main

    out = tmp_path / "build"
    rc = main(["export", "digits-cnn", "--input", "1x1x16x16", "--to", "onnx,qnn", "--soc", "SM8750",
               "--calib", "digits", "--out", str(out)])
    text = _all(capsys.readouterr())
    assert rc == 0, text
    assert (out / "digits-cnn.onnx").is_file() and any(out.glob("*_ctx.onnx"))
    manifest = json.loads((out / "manifest.json").read_text())
    qnn = next(v for v in manifest.values() if v["stage"] == "qnn")
    assert {"onnx", "qnn"} <= {v["stage"] for v in manifest.values()} and qnn["details"]["htp_arch"] == 79
