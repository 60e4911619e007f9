"""CLI: profile / targets / check / demo on real models, and one-line errors with exit code 2 for bad input."""
from __future__ import annotations

import json
import re
import sys
import textwrap

import pytest

from edgedeploy.cli import main
from edgedeploy.errors import ShapeError

DIGITS = ["digits-cnn", "--input", "1x1x16x16"]


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    """Tables as on a wide terminal, so names are not wrapped across lines."""
    from edgedeploy.cli.app import console

    monkeypatch.setattr(console, "_width", 240)


def _run(capsys, *args):
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out + out.err


@pytest.fixture
def factory_dir(tmp_path, monkeypatch):
    """A project folder with a model module, importable as edcli_models:... from the current folder."""
    (tmp_path / "edcli_models.py").write_text(textwrap.dedent("""
        import torch
        import torch.nn.functional as F

        class Warp(torch.nn.Module):
            def forward(self, x):
                grid = torch.zeros(x.shape[0], x.shape[2], x.shape[3], 2)
                return F.grid_sample(x, grid, align_corners=False)

        class Gaze(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, 12, 3, padding=1)
                self.warp = Warp()

            def forward(self, x):
                return F.pixel_shuffle(self.conv(self.warp(x)), 2)

        def gaze():
            return Gaze()

        class Broadcast(torch.nn.Module):
            def forward(self, x):
                return x + torch.ones(1, 16, 16)
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "edcli_models", raising=False)
    yield tmp_path
    sys.modules.pop("edcli_models", None)


def test_targets_lists_shipped_targets(capsys):
    rc, out = _run(capsys, "targets")
    assert rc == 0
    for name in ("cpu", "myriadx", "qualcomm-htp", "24-30"):
        assert name in out


def test_profile_writes_json_and_top(capsys, tmp_path):
    out_json = tmp_path / "p.json"
    rc, out = _run(capsys, "profile", *DIGITS, "--precision", "fp16", "--fps", "30", "--json", str(out_json))
    assert rc == 0 and "profile written" in out
    data = json.loads(out_json.read_text())
    assert data["macs"] == 1_806_976 and data["precision"] == "fp16" and data["fps"] == 30
    assert data["totals"]["bandwidth_gbps"] == pytest.approx(data["traffic_bytes"] * 30 / 1e9)
    rc, top = _run(capsys, "profile", *DIGITS, "--top", "2")
    assert rc == 0
    heaviest = sorted(data["layers"], key=lambda r: r["traffic_bytes"], reverse=True)
    assert heaviest[0]["name"] in top and heaviest[-1]["name"] not in top


def test_profile_with_target_also_checks(capsys):
    rc, out = _run(capsys, "profile", *DIGITS, "--target", "myriadx")      # profiled at the target's fp16
    assert rc == 0 and "DigitsCNN @ fp16" in out and "DigitsCNN on myriadx (fp16): PASS" in out
    rc, out = _run(capsys, "profile", *DIGITS)
    assert rc == 0 and "DigitsCNN @ fp32" in out and "myriadx" not in out


def test_check_passes_and_writes_json(capsys, tmp_path):
    out_json = tmp_path / "r.json"
    rc, out = _run(capsys, "check", *DIGITS, "--target", "myriadx", "--json", str(out_json))
    assert rc == 0
    data = json.loads(out_json.read_text())
    assert data["passed"] is True and data["precision"] == "fp16" and data["target"] == "myriadx"
    assert {v["name"]: v["passed"] for v in data["verdicts"]} == {
        "precision": True, "fp16 range": True, "ops": True, "memory": True, "latency": True, "fps": True,
        "bandwidth": True}


def test_check_failing_model_exits_1_naming_the_op(capsys, factory_dir):
    rc, out = _run(capsys, "check", "edcli_models:gaze", "--input", "1x3x8x8", "--target", "myriadx")
    assert rc == 1
    assert "grid_sampler" in out and "FAIL" in out
    rc, _ = _run(capsys, "check", "edcli_models:gaze", "--input", "1x3x8x8", "--target", "qualcomm-htp",
                 "--precision", "fp16")
    assert rc == 0


def test_check_with_user_target_yaml(capsys, tmp_path):
    from edgedeploy.targets.target import PROFILES_DIR

    slow = tmp_path / "slowcam.yaml"
    slow.write_text((PROFILES_DIR / "myriadx.yaml").read_text()
                    .replace("name: myriadx", "name: slowcam").replace("fp16: 1.0e12", "fp16: 1.0e5"))
    rc, out = _run(capsys, "check", *DIGITS, "--target", str(slow))
    assert rc == 1 and "slowcam" in out and "over the 24-30 ms budget" in re.sub(r"\s+", " ", out)


def _one_line_error(rc, out, *needles):
    assert rc == 2, out
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.strip() and not line.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith("error:"), out
    for needle in needles:
        assert needle in out, out


def test_bad_shape(capsys):
    _one_line_error(*_run(capsys, "profile", "digits-cnn", "--input", "1x1xAx16"), "cannot parse input shape")


def test_missing_shape_for_a_torch_model(capsys):
    _one_line_error(*_run(capsys, "check", "digits-cnn", "--target", "myriadx"), "--input")


def test_factory_that_cannot_be_imported(capsys, factory_dir):
    _one_line_error(*_run(capsys, "profile", "edcli_nope.models:build", "--input", "1x3x8x8"),
                    "cannot import module 'edcli_nope.models'")
    _one_line_error(*_run(capsys, "profile", "edcli_models:missing", "--input", "1x3x8x8"), "has no attribute")


def test_unknown_zoo_name(capsys):
    _one_line_error(*_run(capsys, "profile", "no-such-net", "--input", "1x3x8x8"), "unknown model 'no-such-net'")


def test_forward_that_fails_at_the_shape(capsys):
    _one_line_error(*_run(capsys, "profile", "digits-cnn", "--input", "1x3x16x16"),
                    "DigitsCNN.forward failed on input 1x3x16x16")


def test_forward_that_fails_to_broadcast(capfd, factory_dir):
    # capfd: torch's own log handlers write to the process's stderr, which capsys would not see
    _one_line_error(*_run(capfd, "profile", "edcli_models:Broadcast", "--input", "1x3x8x8"),
                    "Broadcast.forward failed on input 1x3x8x8")


def test_unknown_target(capsys):
    _one_line_error(*_run(capsys, "check", *DIGITS, "--target", "tpu9"), "unknown target 'tpu9'", "myriadx")


def test_malformed_target_yaml(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndescription: [unclosed\n")
    _one_line_error(*_run(capsys, "check", *DIGITS, "--target", str(bad)), str(bad), "not valid YAML")
    bad.write_text("name: x\ndescription: y\n")
    _one_line_error(*_run(capsys, "check", *DIGITS, "--target", str(bad)), "field 'precisions' is missing")


def test_unreadable_onnx(capsys, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    _one_line_error(*_run(capsys, "profile", str(bad), "--input", "1x3x8x8"), "broken.onnx")
    _one_line_error(*_run(capsys, "profile", str(tmp_path / "absent.onnx")), "does not exist")


def test_debug_shows_the_exception(capsys):
    with pytest.raises(ShapeError):
        main(["profile", "digits-cnn", "--input", "1x1xAx16", "--debug"])


def test_check_an_onnx_file(capsys, factory_dir):
    import warnings

    import torch

    from edcli_models import gaze  # noqa: I001 - the fixture's module
    from edgedeploy.zoo.digits import DigitsCNN

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(DigitsCNN().eval(), (torch.zeros(1, 1, 16, 16),), "digits.onnx", dynamo=False,
                          opset_version=13)
        torch.onnx.export(gaze().eval(), (torch.zeros(1, 3, 8, 8),), "gaze.onnx", dynamo=False, opset_version=16)
    rc, out = _run(capsys, "check", "digits.onnx", "--target", "myriadx", "--json", "r.json")
    data = json.loads((factory_dir / "r.json").read_text())
    assert rc == 0 and data["passed"] and data["model"] == "digits.onnx"
    rc, out = _run(capsys, "check", "gaze.onnx", "--target", "myriadx")
    assert rc == 1 and "GridSample" in out


def test_prune_taylor_on_data_feeds_the_model_tensors(capsys, tmp_path):
    """--data batches reach the gradient criterion as tensors (numpy arrays crashed inside the model's conv)."""
    rc, out = _run(capsys, "prune", *DIGITS, "-c", "taylor", "--data", "digits", "-a", "0.25",
                   "--out", str(tmp_path / "t"))
    assert rc == 0, out
    report = json.loads((tmp_path / "t" / "prune_report.json").read_text())
    assert report["criterion"] == "taylor" and report["macs_after"] < report["macs_before"]


def test_a_zoo_model_without_pretrained_is_announced_and_seeded(tmp_path, capsys):
    """Two exports of `digits-cnn` (no --pretrained) are the same model, and the CLI says its weights are random."""
    import hashlib

    from edgedeploy.cli import main

    digests = []
    for k in range(2):
        out = tmp_path / str(k)
        assert main(["export", "digits-cnn", "--input", "1x1x16x16", "--to", "onnx", "--out", str(out)]) == 0
        assert "note: digits-cnn has untrained, random weights (seed 0); add --pretrained" in capsys.readouterr().out
        digests.append(hashlib.sha256((out / "digits-cnn.onnx").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_bench_times_the_given_shape_of_a_dynamic_onnx(tmp_path, capsys):
    import json

    import onnx
    from onnx import TensorProto, helper

    from edgedeploy.cli import main

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, "h", "w"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "dyn", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "dyn.onnx")
    assert main(["bench", str(tmp_path / "dyn.onnx"), "--input", "2x1x24x40", "--repeats", "3", "--warmup", "1",
                 "--json", str(tmp_path / "b.json")]) == 0
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert rows and all(r["shapes"] == [[2, 1, 24, 40]] for r in rows)
