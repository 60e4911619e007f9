"""Report generation: time and file size of the one-file HTML report, against the issue's limits (<= 10 s, <= 5 MB
for a 100-layer model).

Runs: the digits run of tests/test_report.py (train, profile, check myriadx, prune, distill, quantize int8,
export onnx+openvino, bench, evaluate; real sklearn digits) and a ResNet-50 run (zoo.reference, 224x224: profile,
check against myriadx, ONNX export; 122 ONNX nodes in the graph view). Also the graph view alone. The run
folders are built first (not timed). Then the overhead of ``edgedeploy run``: a digits recipe (train, profile,
check, prune, distill, quantize, export, bench, evaluate) against the same library calls from Python writing the
same artifacts, interleaved. Writes bench-results/bench_report.json.
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


OVERHEAD_RECIPE = """\
name: overhead
model: digits-cnn
input: 1x1x16x16
target: myriadx
data: digits
threads: 1
steps:
  - train: {epochs: 4}
  - profile: {precision: fp16, fps: 30}
  - check: {}
  - prune: {granularity: channel, amount: 0.5}
  - distill: {epochs: 2}
  - quantize: {mode: int8-static, backend: onnxruntime}
  - export: {to: [onnx, openvino]}
  - bench: {threads: [1], repeats: 20}
  - evaluate: {}
"""


def by_hand(folder: Path) -> None:
    """The recipe's steps as a user would call them from Python, writing the same artifacts."""
    import numpy as np
    import torch

    from edgedeploy.compress.distill import DistillConfig
    from edgedeploy.compress.distill_report import distill_summary, top1
    from edgedeploy.compress.prune import PruneConfig, prune
    from edgedeploy.compress.quantize import QuantConfig, quantize
    from edgedeploy.metrics.profile import profile
    from edgedeploy.run.export import ExportConfig, export
    from edgedeploy.runtime import BenchConfig, benchmark_matrix
    from edgedeploy.targets.check import check
    from edgedeploy.zoo.digits import digits_cnn, load_digits_data

    data, shape = load_digits_data(), (1, 1, 16, 16)
    model = digits_cnn(pretrained=True, epochs=4, seed=0)
    profile(model, shape, precision="fp16", fps=30)
    check(model, "myriadx", input_shape=shape)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    pruned = prune(model, PruneConfig(granularity="channel", amount=0.5), x, train_data=data, out=folder / "prune",
                   source="digits-cnn").model
    student = distill_summary(pruned, model, data, DistillConfig(epochs=2)).model
    q = quantize(student, QuantConfig(mode="int8-static", backend="onnxruntime"), calibration=data, eval_data=data,
                 example_inputs=np.zeros(shape, np.float32), out=folder / "quantize")
    files = export(student, ExportConfig(to=("onnx", "openvino")), input_shape=shape, calibration=data,
                   out=folder / "export")
    benchmark_matrix([("distilled", student, shape)] + [(f.path.name, f.path, None) for f in files] +
                     [(q.path.name, q.path, None)], BenchConfig(threads=(1,), repeats=20))
    top1(student, data)


def run_overhead(tmp: Path) -> dict[str, Any]:
    """Wall time of ``run_recipe`` against the same steps called from Python (same artifacts written)."""
    import torch

    from edgedeploy.run.engine import run_recipe

    recipe = tmp / "overhead.yaml"
    recipe.write_text(OVERHEAD_RECIPE)
    times: dict[str, list[float]] = {"recipe": [], "python": []}
    run_recipe(recipe, tmp / "warm-run", echo=lambda _line: None)   # first calls import exporters etc.: untimed
    by_hand(tmp / "warm-py")
    for i in range(REPEATS):                        # interleaved, so load on the host hits both alike
        torch.manual_seed(0)
        t = time.perf_counter()
        assert run_recipe(recipe, tmp / f"run{i}", echo=lambda _line: None).ok
        times["recipe"].append(time.perf_counter() - t)
        torch.manual_seed(0)
        t = time.perf_counter()
        by_hand(tmp / f"py{i}")
        times["python"].append(time.perf_counter() - t)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    row = {"recipe_s": round(med["recipe"], 2), "python_s": round(med["python"], 2),
           "overhead_s": round(med["recipe"] - med["python"], 2), "ratio": round(med["recipe"] / med["python"], 3)}
    print(f"edgedeploy run {row['recipe_s']:.1f} s vs the same steps from Python {row['python_s']:.1f} s: overhead "
          f"{row['overhead_s']:+.1f} s (x{row['ratio']:.2f}; step folders, result JSON, model.pt per step, hashes)")
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
        overhead = run_overhead(tmp)
        save("bench_report", {"host": host, "repeats": REPEATS, "rows": rows, "within_limits": ok,
                              "run_overhead": overhead})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
