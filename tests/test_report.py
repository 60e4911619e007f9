"""The HTML report of a run folder built from real library calls on sklearn's real digits.

The run folder follows the contract of ``edgedeploy run`` (run.json + NN-step/result.json): train, profile,
check (myriadx), prune (channel 0.5), distill, quantize (onnxruntime int8-static), export (onnx, openvino),
bench and evaluate. ``digits_run()`` builds it once per test session (the browser test and the benchmark
reuse it).
"""
from __future__ import annotations

import atexit
import json
from html import unescape
import re
import shutil
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

SHAPE = (1, 1, 16, 16)


def write_step(run: dict[str, Any], folder: Path, kind: str, variant: str | None, data: dict[str, Any] | None,
               seconds: float, status: str = "ok", error: str | None = None, name: str | None = None) -> Path:
    """Append one step to ``run`` and write its ``NN-kind/result.json`` (no result for a failed step)."""
    index = len(run["steps"]) + 1
    sub = folder / f"{index:02d}-{kind}"
    sub.mkdir(exist_ok=True)
    artifacts = sorted(str(p.relative_to(sub)) for p in sub.rglob("*") if p.is_file() and p.name != "result.json")
    if data is not None:
        (sub / "result.json").write_text(json.dumps(
            {"step": kind, "name": name or kind, "status": status, "seconds": seconds, "variant": variant,
             "data": data, "artifacts": artifacts}, indent=1, default=str))
    run["steps"].append({"index": index, "name": name or kind, "dir": sub.name, "status": status,
                         "seconds": seconds, "error": error})
    return sub


def finish_run(run: dict[str, Any], folder: Path) -> Path:
    """Write run.json."""
    run["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    (folder / "run.json").write_text(json.dumps(run, indent=1))
    return folder


def build_digits_run(folder: Path) -> Path:
    """A complete digits run (real training, compression, export and timing) written into ``folder``."""
    from edgedeploy._io import package_versions
    from edgedeploy.compress.distill import DistillConfig
    from edgedeploy.compress.distill_report import distill_summary
    from edgedeploy.compress.prune import PruneConfig, prune
    from edgedeploy.compress.quantize import QuantConfig, quantize
    from edgedeploy.metrics.hostinfo import host_info
    from edgedeploy.metrics.profile import profile
    from edgedeploy.run.export import ExportConfig, export
    from edgedeploy.runtime import BenchConfig, benchmark_matrix, load
    from edgedeploy.targets.check import check
    from edgedeploy.zoo.digits import DigitsCNN, accuracy, load_digits_data, train_classifier

    torch.set_num_threads(1)
    folder.mkdir(parents=True, exist_ok=True)
    data = load_digits_data()
    run: dict[str, Any] = {
        "recipe": {"model": "digits-cnn", "target": "myriadx", "data": "digits",
                   "steps": [{"train": {"epochs": 6}}, "profile", "check", {"prune": {"amount": 0.5}},
                             {"distill": {"epochs": 2}}, {"quantize": {"mode": "int8-static"}},
                             {"export": {"to": ["onnx", "openvino"]}}, "bench", "evaluate"]},
        "model": "digits-cnn", "target": "myriadx", "host": host_info().to_dict(),
        "versions": package_versions("torch", "onnx", "onnxruntime", "openvino"),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "steps": []}

    t = time.perf_counter()
    torch.manual_seed(0)
    model = DigitsCNN()
    losses = train_classifier(model, data, epochs=6, seed=0)
    top1 = accuracy(model, data.x_test, data.y_test)
    write_step(run, folder, "train", "baseline", {"history": [{"epoch": i + 1, "loss": v} for i, v in
                                                              enumerate(losses)], "metrics": {"top1": top1}},
               time.perf_counter() - t)
    t = time.perf_counter()
    prof = profile(model, SHAPE, precision="fp16", fps=30)
    write_step(run, folder, "profile", "baseline", prof.to_dict(), time.perf_counter() - t)
    t = time.perf_counter()
    write_step(run, folder, "check", "baseline", check(model, "myriadx", input_shape=SHAPE).to_dict(),
               time.perf_counter() - t)
    t = time.perf_counter()
    pruned = prune(model, PruneConfig(granularity="channel", amount=0.5), example_inputs=torch.zeros(SHAPE),
                   progress=False)
    write_step(run, folder, "prune", "pruned", pruned.report.to_dict(), time.perf_counter() - t)
    t = time.perf_counter()
    summary = distill_summary(pruned.model, model, data, DistillConfig(epochs=2))
    write_step(run, folder, "distill", "pruned", summary.to_dict(), time.perf_counter() - t)
    student = summary.model
    t = time.perf_counter()
    qdir = folder / f"{len(run['steps']) + 1:02d}-quantize"
    q = quantize(student, QuantConfig(mode="int8-static", backend="onnxruntime"), calibration=data.x_train,
                 eval_data=(data.x_test, data.y_test), example_inputs=torch.zeros(SHAPE), out=qdir)
    write_step(run, folder, "quantize", "pruned-int8", q.report.to_dict(), time.perf_counter() - t)
    t = time.perf_counter()
    edir = folder / f"{len(run['steps']) + 1:02d}-export"
    results = export(student, ExportConfig(to=("onnx", "openvino")), input_shape=SHAPE, out=edir, name="pruned")
    write_step(run, folder, "export", "pruned", {"results": [r.to_dict() for r in results]}, time.perf_counter() - t)
    t = time.perf_counter()
    bench = benchmark_matrix([("baseline", model, SHAPE)] + [(str(r.path), r.path, None) for r in results]
                             + [(str(q.path), q.path, None)], BenchConfig(threads=(1,), repeats=20, warmup=5))
    rows = bench.to_dict()
    rows["results"][0]["variant"] = "baseline"            # a torch module has no file to match a variant by
    write_step(run, folder, "bench", None, rows, time.perf_counter() - t)
    t = time.perf_counter()
    session = load(q.path, threads=1)
    logits = np.concatenate([session.run(data.x_test[i:i + 1].numpy())[0] for i in range(len(data.x_test))])
    top1_q = 100.0 * float((logits.argmax(1) == data.y_test.numpy()).mean())
    write_step(run, folder, "evaluate", "pruned-int8", {"metrics": {"top1": top1_q}, "variant": "pruned-int8"},
               time.perf_counter() - t)
    return finish_run(run, folder)


@lru_cache(maxsize=1)
def digits_run() -> Path:
    """The digits run folder, built once per process and removed at exit."""
    tmp = Path(tempfile.mkdtemp(prefix="edgedeploy-report-run-"))
    atexit.register(shutil.rmtree, tmp, True)
    return build_digits_run(tmp / "run")


def copy_run(src: Path, dest: Path) -> Path:
    """A copy of a run folder to modify in a test."""
    shutil.copytree(src, dest)
    return dest


@pytest.fixture(scope="module")
def run_dir() -> Path:
    return digits_run()


@pytest.fixture(scope="module")
def report(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from edgedeploy.report import render_report

    out = render_report(run_dir, tmp_path_factory.mktemp("report") / "report.html")
    return out, out.read_text(encoding="utf-8")


def _result(run_dir: Path, kind: str) -> dict[str, Any]:
    """The data of the first step of ``kind`` in the run folder (read straight from its result.json)."""
    for sub in sorted(run_dir.glob("[0-9][0-9]-*")):
        res = json.loads((sub / "result.json").read_text()) if (sub / "result.json").is_file() else {}
        if res.get("step") == kind:
            return res["data"]
    raise KeyError(kind)


def test_report_is_one_offline_file_with_every_section_and_plot(report):
    path, html = report
    assert path.stat().st_size < 1_000_000                       # digits: a few hundred kB
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    assert "default-src 'none'" in html                          # the browser may not fetch anything either
    for anchor in ("summary", "variants", "plots", "steps", "graph"):
        assert f'<section id="{anchor}">' in html
    figures = re.findall(r'<figure id="([^"]+)" class="plot"><h3>[^<]*</h3><svg', html)
    assert {f.rsplit("-", 1)[0] if f[-1].isdigit() else f for f in figures} == {
        "fig-latency", "fig-pareto", "fig-layers", "fig-budget", "fig-roofline", "fig-sqnr", "fig-channels",
        "fig-curves"}
    assert len(figures) == 9                                     # training and distillation curves separately
    assert 'class="error"' not in html and "could not be shown" not in html
    assert html.count('<g class="node">') == 16                  # the exported ONNX: 14 nodes + input + output


def test_summary_judges_every_checked_target_and_the_worst_wins(run_dir, tmp_path):
    """Two targets checked: both headlines, lines tagged by target; one FAIL makes the run FAIL."""
    from edgedeploy.report import load_run, overall_verdict

    check = _result(run_dir, "check")
    other = {**check, "target": "qualcomm-htp", "status": "FAIL",
             "verdicts": [{**v, "status": "FAIL", "passed": False} if v["name"] == "memory" else v
                          for v in check["verdicts"]]}
    run = {"recipe": {}, "model": "digits-cnn", "target": "myriadx", "steps": [], "started": "t"}
    write_step(run, tmp_path, "check", "baseline", check, 0.1)
    write_step(run, tmp_path, "check", "baseline", other, 0.1)
    status, head, lines = overall_verdict(load_run(finish_run(run, tmp_path)))
    assert status == "FAIL"
    assert head == ("digits-cnn on myriadx: meets every budget (7 checks at fp16); "
                    "digits-cnn on qualcomm-htp: fails memory")
    assert lines[0].startswith("myriadx: ") and any(x.startswith("qualcomm-htp: FAIL memory") for x in lines)


def test_summary_states_the_verdict_the_shipped_hashes_and_the_host(run_dir, report):
    import hashlib

    from edgedeploy.report import load_run, overall_verdict

    _, html = report
    check = _result(run_dir, "check")
    status, head, lines = overall_verdict(load_run(run_dir))
    assert status == check["status"] == "PASS"
    assert head == "digits-cnn on myriadx: meets every budget (7 checks at fp16)"
    latency = next(v for v in check["verdicts"] if v["name"] == "latency")
    assert f"latency {latency['measured']:.3g} ms ≤ 30 ms" in lines[0]
    fps = next(v for v in check["verdicts"] if v["name"] == "fps")
    assert f"fps {round(fps['measured']):,} FPS ≥ 27 FPS" in lines[0]
    export_dir = next(run_dir.glob("*-export"))
    for name in ("pruned.xml", "pruned.bin"):                    # the last artifact of the export step
        digest = hashlib.sha256((export_dir / name).read_bytes()).hexdigest()
        assert f"<code>{name}</code>" in html and digest in html
    assert json.loads((run_dir / "run.json").read_text())["host"]["cpu_model"] in html


def test_variants_gather_numbers_across_steps(run_dir):
    from edgedeploy.report import collect_variants, load_run

    v = {x.name: x for x in collect_variants(load_run(run_dir))}
    assert list(v) == ["baseline", "pruned", "pruned-int8"]
    prof, prune_, quant = _result(run_dir, "profile"), _result(run_dir, "prune"), _result(run_dir, "quantize")
    assert (v["baseline"].params, v["baseline"].macs) == (prof["params"], prof["macs"])
    assert v["baseline"].size_bytes == prof["model_size_bytes"]["fp16"]        # profiled at the target's fp16
    assert v["baseline"].energy_uj == pytest.approx(prof["totals"]["energy_uj"])
    assert (v["pruned"].params, v["pruned"].macs) == (prune_["params_after"], prune_["macs_after"])
    assert prune_["params_after"] < 0.3 * prof["params"]                       # channel 0.5 keeps ~1/4 of conv weights
    assert v["pruned-int8"].size_bytes == quant["size_after_bytes"]
    # accuracy: evaluate beats quantize beats distill beats train, each for its own variant
    assert v["baseline"].accuracy == _result(run_dir, "train")["metrics"]["top1"] > 95.0
    assert v["pruned"].accuracy == _result(run_dir, "distill")["after_top1"] > 90.0
    assert v["pruned-int8"].accuracy == _result(run_dir, "evaluate")["metrics"]["top1"]
    assert abs(v["pruned-int8"].accuracy - quant["accuracy_after"]) < 0.5       # same ORT model, same test split
    # bench rows found their variant by the artifact they timed
    bench = _result(run_dir, "bench")["results"]
    assert set(v["baseline"].latency) == {"torch, 1 thr"}
    assert set(v["pruned"].latency) == {"onnxruntime, 1 thr", "openvino, 1 thr"}
    assert set(v["pruned-int8"].latency) == {"onnxruntime, 1 thr"}
    ort = next(r for r in bench if r["artifact"].endswith("pruned.onnx"))
    assert v["pruned"].latency["onnxruntime, 1 thr"] == (ort["median_ms"], ort["p90_ms"])
    assert [e["format"] for e in v["pruned"].exports] == ["onnx", "openvino"]
    assert all(e["parity"]["max_abs"] < 1e-2 for e in v["pruned"].exports)


def test_variants_table_and_step_tables_show_the_numbers(run_dir, report):
    _, html = report
    variants = html[html.index('<section id="variants">'):html.index('<section id="plots">')]
    assert f"{_result(run_dir, 'evaluate')['metrics']['top1']:.4g} %" in variants
    assert "onnx ✓ max |Δ|" in variants and "openvino ✓ max |Δ|" in variants
    steps = html[html.index('<section id="steps">'):]
    for verdict in _result(run_dir, "check")["verdicts"]:
        assert f"<td>{verdict['name']}</td>" in steps
    assert "int8-static via <b>onnxruntime</b>" in steps


def test_pareto_front_and_verdict_numbers():
    from edgedeploy.report.build import verdict_numbers
    from edgedeploy.report.figures import pareto_front

    pts = [(0.3, 98.4), (0.02, 96.7), (0.025, 96.7), (0.1, 95.0), (0.05, 97.9)]
    assert sorted(pareto_front(pts)) == [(0.02, 96.7), (0.05, 97.9), (0.3, 98.4)]
    fail = {"name": "latency", "passed": False, "measured": 41.5, "limit": 30.0, "unit": "ms"}
    assert verdict_numbers(fail) == "latency 41.5 ms > 30 ms"
    fps = {"name": "fps", "passed": False, "measured": 12.0, "limit": 27.0, "unit": "FPS"}
    assert verdict_numbers(fps) == "fps 12 FPS < 27 FPS"
    assert verdict_numbers({"name": "ops", "passed": True, "measured": 0, "limit": 0, "unit": "op types"}) == ""


def test_unknown_step_kind_is_shown_generically_and_a_renderer_can_be_registered(run_dir, tmp_path):
    from edgedeploy.report import Section, register_section, render_report
    from edgedeploy.report import sections

    folder = copy_run(run_dir, tmp_path / "run")
    run = json.loads((folder / "run.json").read_text())
    exits = {"exits": 2, "threshold": 0.85, "histogram": [612, 201, 37], "saved": {"macs_fraction": 0.41}}
    write_step(run, folder, "early-exit", "early-exit", exits, 1.5)
    finish_run(run, folder)
    html = render_report(folder).read_text()
    steps = html[html.index('<section id="steps">'):]
    for field, value in (("threshold", "0.85"), ("saved.macs_fraction", "0.41"), ("histogram", "3 item(s)")):
        assert f"<td>{field}</td><td>{value}</td>" in steps
    try:
        @register_section("early-exit")
        def _exits(step, run):
            return Section(f"<p>exit histogram {step.data['histogram']}</p>")

        html = render_report(folder).read_text()
        assert "<p>exit histogram [612, 201, 37]</p>" in html and "<td>threshold</td>" not in html
    finally:
        sections._RENDERERS.pop("early-exit", None)


def test_failed_step_fails_the_run_and_keeps_what_earlier_steps_made(run_dir, tmp_path):
    from edgedeploy.report import render_report

    folder = tmp_path / "run"
    folder.mkdir()
    run = json.loads((run_dir / "run.json").read_text())
    run["steps"] = []
    for sub in sorted(run_dir.glob("0[1-3]-*")):                  # train, profile, check
        shutil.copytree(sub, folder / sub.name)
        res = json.loads((sub / "result.json").read_text())
        run["steps"].append({"index": len(run["steps"]) + 1, "name": res["name"], "dir": sub.name,
                             "status": "ok", "seconds": res["seconds"], "error": None})
    write_step(run, folder, "quantize", "quantized", None, 0.4, status="failed",
               error="CalibrationError: calibration data has 3 channels but the model input has 1")
    write_step(run, folder, "export", None, None, 0.0, status="skipped")
    finish_run(run, folder)
    html = render_report(folder).read_text()
    assert '<span class="badge fail">FAIL</span><b>digits-cnn on myriadx: meets every budget (7 checks at fp16); ' \
           '1 step(s) failed</b>' in html
    assert "step 4 (quantize) failed: CalibrationError: calibration data has 3 channels" in html
    assert '<span class="badge info">skipped</span>' in html
    # no bench, no export: no latency plot, no Pareto, no graph; the profile's and check's plots stay
    assert 'id="fig-latency' not in html and 'id="fig-pareto' not in html and '<section id="graph">' not in html
    assert 'id="fig-layers-2"' in html and 'id="fig-roofline-3"' in html


def test_a_result_a_renderer_cannot_read_is_reported_in_place(run_dir, tmp_path):
    from edgedeploy.report import render_report

    folder = copy_run(run_dir, tmp_path / "run")
    prof_file = next(folder.glob("*-profile")) / "result.json"
    res = json.loads(prof_file.read_text())
    for row in res["data"]["layers"]:
        del row["macs"]                                          # not a Profile.to_dict() any more
    prof_file.write_text(json.dumps(res))
    check_file = next(folder.glob("*-check")) / "result.json"
    res = json.loads(check_file.read_text())
    fps = next(v for v in res["data"]["verdicts"] if v["name"] == "fps")
    fps["measured"] = float("inf")                               # json writes Infinity; the plot must skip it
    check_file.write_text(json.dumps(res))
    html = unescape(render_report(folder).read_text())
    assert ("this profile result could not be shown (KeyError: 'macs'); check 02-profile/result.json against the "
            "step's result class") in html
    assert 'id="fig-budget-3"' in html and "fps ∞ FPS ≥ 27 FPS" in html
    assert 'id="fig-sqnr-6"' in html                             # every other step is still there


def test_a_folder_that_is_not_a_run_is_one_clear_error(tmp_path, run_dir):
    from edgedeploy.errors import ArtifactError
    from edgedeploy.report import render_report

    with pytest.raises(ArtifactError, match="is not a run folder .no run.json.; make one with `edgedeploy run"):
        render_report(tmp_path)
    folder = copy_run(run_dir, tmp_path / "run")
    (next(folder.glob("*-check")) / "result.json").write_text('{"step": "check", "data": {')
    with pytest.raises(ArtifactError, match=r"03-check/result.json is not valid JSON"):
        render_report(folder)
    with pytest.raises(ArtifactError, match="is a directory"):
        render_report(run_dir, tmp_path)


def test_cli_report_and_view(run_dir, tmp_path, capsys):
    import edgedeploy.cli.report_cmd  # noqa: F401  (registers the commands, as cli._register does)
    from edgedeploy.cli import main

    out = tmp_path / "r.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "PASS digits-cnn on myriadx: meets every budget" in text and f"report written to {out}" in text
    assert '<section id="graph">' in out.read_text()
    onnx = next(run_dir.glob("*-export")) / "pruned.onnx"
    svg = tmp_path / "g.svg"
    assert main(["view", str(onnx), "--out", str(svg)]) == 0
    assert svg.read_text().count('<g class="node">') == 16
    assert main(["view", str(onnx), "--out", str(svg), "--color", "flops"]) == 2
    assert "unknown --color 'flops'; choose one of macs, time" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_importing_the_report_package_is_cheap():
    import subprocess
    import sys

    code = ("import sys, edgedeploy.report as r; r.register_section; "
            "print(sorted(m for m in ('matplotlib', 'onnx', 'onnxruntime', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_graph_view_draws_the_plain_onnx_not_a_compiled_wrapper(tmp_path):
    """An export step that wrote ONNX and then a QNN context model (an ONNX file of one EPContext node): the
    graph view draws the network, not the wrapper."""
    import json as _json

    from edgedeploy.report.build import exported_onnx
    from edgedeploy.report.rundir import load_run

    step = tmp_path / "01-export"
    step.mkdir()
    for name in ("net.onnx", "net_ctx.onnx"):
        (step / name).write_bytes(b"x")
    (step / "result.json").write_text(_json.dumps({
        "step": "export", "name": "01-export", "index": 1, "status": "ok", "seconds": 1.0, "variant": "v",
        "artifacts": ["net.onnx", "net_ctx.onnx"],
        "data": {"results": [{"format": "onnx", "path": "net.onnx"}, {"format": "qnn", "path": "net_ctx.onnx"}]}}))
    (tmp_path / "run.json").write_text(_json.dumps({
        "recipe": {}, "model": "m", "target": None, "host": {}, "versions": {}, "started": None, "finished": None,
        "steps": [{"index": 1, "kind": "export", "dir": "01-export", "status": "ok", "seconds": 1.0}]}))
    assert exported_onnx(load_run(tmp_path)).name == "net.onnx"
    data = _json.loads((step / "result.json").read_text())
    data["data"]["results"] = data["data"]["results"][1:]                   # only the wrapper: still drawn
    (step / "result.json").write_text(_json.dumps(data))
    assert exported_onnx(load_run(tmp_path)).name == "net_ctx.onnx"
