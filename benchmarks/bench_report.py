"""Report generation: time and file size of the one-file HTML report, against the issue's limits (<= 10 s, <= 5 MB
for a 100-layer model).

Runs: the digits run of tests/test_report.py (train, profile, check myriadx, prune, distill, quantize int8,
export onnx+openvino, bench, evaluate; real sklearn digits) and a ResNet-50 run (zoo.reference, 224x224: profile,
check against myriadx, ONNX export; 122 ONNX nodes in the graph view). Also the graph view alone. The run
folders are built first (not timed). Writes bench-results/bench_report.json.
Run: .venv/bin/python benchmarks/bench_report.py [--quick]
"""
from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))   # the digits run builder lives there
from _common import banner, best_of, save  # noqa: E402

QUICK = "--quick" in sys.argv
REPEATS = 1 if QUICK else 3


def resnet50_run(folder: Path) -> Path:
    """A ResNet-50 run folder: profile, check (myriadx, on the profile) and an ONNX export."""
    import torch

    from edgedeploy.export.onnx import OnnxConfig, export_onnx
    from edgedeploy.metrics.profile import profile
    from edgedeploy.targets.check import check
    from edgedeploy.zoo.reference import ResNet50
    from test_report import finish_run, write_step

    torch.manual_seed(0)
    model = ResNet50().eval()
    shape = (1, 3, 224, 224)
    run: dict[str, Any] = {"recipe": {"model": "resnet50"}, "model": "resnet50", "target": "myriadx",
                           "host": {}, "versions": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "steps": []}
    folder.mkdir(parents=True)
    t = time.perf_counter()
    prof = profile(model, shape, precision="fp16", fps=30)
    write_step(run, folder, "profile", "baseline", prof.to_dict(), time.perf_counter() - t)
    t = time.perf_counter()
    write_step(run, folder, "check", "baseline", check(prof, "myriadx").to_dict(), time.perf_counter() - t)
    t = time.perf_counter()
    out = folder / "03-export"
    res = export_onnx(model, (torch.randn(shape),), OnnxConfig(exporter="torchscript", opset=17), out=out,
                      name="resnet50")
    write_step(run, folder, "export", "baseline", {"results": [res.to_dict()]}, time.perf_counter() - t)
    return finish_run(run, folder)


def measure(name: str, run_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Median report time over REPEATS calls (after one warm call) and what the file is made of."""
    from edgedeploy.report import render_report
    from edgedeploy.report.build import exported_onnx
    from edgedeploy.report.graph_svg import render_graph_svg
    from edgedeploy.report.rundir import load_run

    out = out_dir / f"{name}.html"
    seconds, path = best_of(lambda: render_report(run_dir, out), repeats=REPEATS)
    html = path.read_text(encoding="utf-8")
    plots = sum(len(m) for m in re.findall(r'<figure id="[^"]+" class="plot">.*?</figure>', html, flags=re.S))
    onnx = exported_onnx(load_run(run_dir))
    graph_s, svg = best_of(lambda: render_graph_svg(onnx), repeats=REPEATS)
    row = {"run": name, "report_s": round(seconds, 3), "bytes": path.stat().st_size,
           "plots_bytes": plots, "plots": html.count('class="plot"'), "graph_nodes": svg.count('<g class="node">') - 2,
           "graph_bytes": len(svg.encode()), "graph_s": round(graph_s, 3), "layers_profiled": len(
               next(s for s in load_run(run_dir).steps if s.kind == "profile").data.get("layers", []))}
    print(f"{name:10s} report {seconds:6.2f} s  {row['bytes'] / 1e6:6.3f} MB  ({row['plots']} plots "
          f"{plots / 1e3:.0f} kB, graph {row['graph_nodes']} nodes {row['graph_bytes'] / 1e3:.0f} kB in "
          f"{graph_s:.2f} s, {row['layers_profiled']} profiled layers)")
    return row


def main() -> None:
    import torch

    torch.set_num_threads(1)
    host = banner("report generation: time and size of the one-file HTML report")
    from test_report import build_digits_run

    tmp = Path(tempfile.mkdtemp(prefix="edgedeploy-bench-report-"))
    try:
        t = time.perf_counter()
        digits = build_digits_run(tmp / "digits")
        r50 = resnet50_run(tmp / "resnet50")
        print(f"# run folders built in {time.perf_counter() - t:.0f} s (not timed below); limits: <= 10 s, <= 5 MB")
        rows = [measure("digits", digits, tmp), measure("resnet50", r50, tmp)]
        ok = all(r["report_s"] <= 10 and r["bytes"] <= 5e6 for r in rows)
        print(f"# within the limits: {ok}")
        save("bench_report", {"host": host, "repeats": REPEATS, "rows": rows, "within_limits": ok})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
