"""``edgedeploy nas run / worker / calibrate``: a real run writes the study, the chosen architecture and a report
with the Pareto front; bad input is one line, exit 2, before any training, with nothing left in --out."""
from __future__ import annotations

import json

import pytest

from edgedeploy.cli import main

SPACE = """space:
  resolution: [8]
  stem: [conv, s2d]
  stem_width: [8]
  stages:
    - {blocks: [BLOCKS], depth: [1, 2], width: [8, 16], kernel: [3], expansion: [1, 2]}
"""
RUN = "trials: 3\npopulation: 2\nepochs: 1\nfinal_epochs: 2\nlatency_repeats: 20\n"


def _yaml(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _one_line_error(rc, capfd):
    text = "".join(capfd.readouterr())
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert rc == 2 and "Traceback" not in text, text
    assert len(lines) == 1 and lines[0].startswith("error:"), text
    return lines[0]


def test_nas_run_writes_the_study_the_chosen_model_and_the_report(tmp_path, capfd):
    cfg = _yaml(tmp_path, "ok.yaml", SPACE.replace("BLOCKS", "conv, repvgg") + RUN)
    out = tmp_path / "out"
    assert main(["nas", "run", cfg, "--out", str(out), "--study", "cli"]) == 0
    text = capfd.readouterr().out
    assert "Pareto front of study 'cli'" in text and "study cli: 3 complete, 0 pruned" in text
    assert "chosen: trial" in text and f"report written to {out / 'report.html'}" in text
    for name in ("study.db", "run.json", "01-nas/result.json", "02-profile/result.json", "03-check/result.json",
                 "best/arch.json", "best/weights.pt", "best/model.onnx", "report.html"):
        assert (out / name).is_file(), name
    result = json.loads((out / "01-nas" / "result.json").read_text())["data"]
    assert result["counts"]["complete"] == 3 and result["final"]["epochs"] == 2
    html = (out / "report.html").read_text()
    assert "Chosen architecture, retrained and exported" in html and "fig-nas-pareto" in html


@pytest.mark.parametrize(("text", "options", "needle"), [
    (SPACE.replace("BLOCKS", "conv, transformer"), [], "unknown block 'transformer'; choose from conv, ghost"),
    ("space: {stages: []}\n", [], "the search space has no stages"),
    (SPACE.replace("BLOCKS", "conv") + "constraints: {params: 50}\n", [], "no architecture of the search space"),
    (SPACE.replace("BLOCKS", "conv"), ["--storage", "postgresql://u:pw@127.0.0.1:1/nas"],
     "cannot reach the study storage postgresql://u:***@127.0.0.1:1/nas"),
    (SPACE.replace("BLOCKS", "conv"), ["--sampler", "grid"], "unknown sampler 'grid'"),
    (SPACE.replace("BLOCKS", "conv") + "objectives: [accuracy, fps]\n", [], "unknown objective 'fps'"),
])
def test_nas_run_bad_input_is_one_line_before_training(tmp_path, capfd, monkeypatch, text, options, needle):
    monkeypatch.setattr("edgedeploy.compress.nas.objectives.train", lambda *a, **k: pytest.fail("trained"))
    cfg = _yaml(tmp_path, "bad.yaml", text)
    out = tmp_path / "out"
    line = _one_line_error(main(["nas", "run", cfg, "--out", str(out), *options]), capfd)
    assert needle in line
    assert "pw@" not in line
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.parametrize(("argv", "needle"), [
    (["nas", "worker", "--study", "x", "--storage", "postgresql://u@127.0.0.1:1/nas"], "cannot reach the study"),
    (["nas", "worker", "--study", "x", "--storage", "study.db"], "needs the storage URL"),
    (["nas", "calibrate", "--runtime", "tflite", "--out", "{tmp}/cal"], "unknown runtime 'tflite'"),
    (["nas", "run", "{tmp}/missing.yaml", "--out", "{tmp}/o"], "missing.yaml does not exist"),
])
def test_other_bad_input_is_one_line(tmp_path, capfd, argv, needle):
    line = _one_line_error(main([a.replace("{tmp}", str(tmp_path)) for a in argv]), capfd)
    assert needle in line


def test_nas_calibrate_on_openvino_fits_the_cpu_model_and_judges_it(tmp_path, capfd, monkeypatch):
    from edgedeploy.targets.calibration import read_calibration
    from edgedeploy.targets.calibration_store import target_calibration
    from edgedeploy.targets.target import Target

    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path / "cache"))
    assert target_calibration(Target.load("cpu")) is None            # this host: plain roofline until calibrated
    cfg = _yaml(tmp_path, "space.yaml", SPACE.replace("BLOCKS", "conv, ghost, repvgg"))
    out = tmp_path / "cal"
    assert main(["nas", "calibrate", "--runtime", "openvino", "--config", cfg, "--archs", "5", "--held-out", "4",
                 "--repeats", "20", "--out", str(out), "--install"]) == 0
    text = capfd.readouterr().out
    # --install: the fit becomes this host's cpu calibration, the one estimate_latency and latency_pred use
    installed = target_calibration(Target.load("cpu"))
    assert installed is not None and installed.coefficients == read_calibration(out / "cpu_calibration.yaml").coefficients
    assert f"installed: {tmp_path / 'cache' / 'calibrations' / 'cpu'}" in text
    assert "cpu latency model (fitted on 5 archs) vs openvino on 4 held-out archs" in text
    assert f"calibration: {out / 'cpu_calibration.yaml'}" in text
    report = json.loads((out / "predictor.json").read_text())
    assert report["runtime"] == "openvino" and report["calibrated"] and len(report["rows"]) == 4
    assert all(r["measured_ms"] > 0 and r["predicted_ms"] > 0 for r in report["rows"])
    assert "openvino, 1 thread, min of 20 runs" in (out / "cpu_calibration.yaml").read_text()
