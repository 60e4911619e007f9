"""``edgedeploy demo`` (what ``make demo`` runs): the shipped headbody recipe end to end at small scale, about
3 minutes on 2 cores: every step ok, a real MyriadX blob and QNN context binary, the trained detector's numbers
on held-out scenes, the report with its detection section; a second run reuses every step."""
from __future__ import annotations

import json
import re

import pytest

from edgedeploy.cli import main

pytestmark = pytest.mark.slow


def test_demo_runs_the_case_study(capsys, tmp_path) -> None:
    out = tmp_path / "demo"
    rc = main(["demo", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    report = out / "08-report" / "report.html"
    assert re.search(r"report: .*report\.html", text.replace("\n", "")) and report.is_file()
    run = json.loads((out / "run.json").read_text())
    assert [s["status"] for s in run["steps"]] == ["ok"] * 8
    checks = [json.loads((out / d / "result.json").read_text())["data"] for d in ("03-check", "04-check")]
    assert [(c["target"], c["status"]) for c in checks] == [("myriadx", "PASS"), ("qualcomm-htp", "PASS")]
    assert checks[0]["latency_ms"] < 30                               # the MyriadX roofline within the 30 ms budget
    export = {r["format"]: r for r in json.loads((out / "05-export" / "result.json").read_text())["data"]["results"]}
    blob = export["blob"]["details"]["blob"]
    assert blob["inputs"]["input"]["dtype"].startswith("U8") and blob["outputs"]["output"]["shape"] == [1, 6, 88, 320]
    assert export["qnn"]["details"]["context_bytes"] > 0 and export["qnn"]["details"]["vs_torch"]["agreement"] >= 0.9
    dai = export["depthai"]["details"]                                # the pipeline and the decoding host script
    assert dai["host_script"] == "detect_on_oak.py" and {"XLinkIn", "NeuralNetwork", "XLinkOut"} <= set(dai["nodes"])
    assert (out / "05-export" / "detect_on_oak.py").is_file()
    rows = json.loads((out / "07-evaluate" / "result.json").read_text())["data"]["metrics"]
    torch_row, onnx_row, ir_row = rows
    # measured (300 steps, 24 held-out scenes): mAP@0.5 66.9, heads 80.6, bodies 53.2, far-head recall 81.8%
    assert torch_row["map50_head"] >= 65 and torch_row["map50_body"] >= 40
    assert torch_row["head_recall_15_20ft"] >= 50
    for row in (onnx_row, ir_row):                                    # the deployed forms detect the same
        assert abs(row["map50"] - torch_row["map50"]) <= 1.0
    html = report.read_text()
    assert "Recall by distance" in html and "Choices impact" in html and "OpenCV Haar cascades" in html
    assert html.count("data:image/jpeg;base64,") >= 4 and "Against the outside reference" in html

    rc = main(["demo", "--out", str(out)])                            # again: every step reused
    text = capsys.readouterr().out
    assert rc == 0 and text.count("cached") >= 8
