"""The ~30 architectures the cpu target's latency model is calibrated on, and their measurement on this host.

timm's CNNs, hybrids and ViTs at small inputs (random init, imported without torchvision through the refusing
stand-in of tests/outside) plus edgedeploy's own zoo and latency architectures. Each is exported once with
``export_onnx`` (parity-checked) and timed at 1 runtime thread with the shared harness
(``edgedeploy.metrics.latency.measure``, what ``runtime.benchmark`` runs) in several rounds that go round-robin
over all models, keeping the median of the round medians.

Two clocks per call: wall time (what ``benchmark`` reports) and the process's CPU time. This host is shared (load
average 5-9 on 2 cores while these were taken), so a runnable inference thread gets a fraction of a core and wall
time measures the neighbours as much as the model; CPU time is the latency the model has on one uncontended core
of this CPU (equal to wall time on an idle host). The calibration uses CPU time; both are written.
"""
from __future__ import annotations

import csv
import datetime
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# (label, source, side): source "timm:NAME" or a MODEL reference; side = input height = width
CPU_ARCHS: tuple[tuple[str, str, int], ...] = (
    ("resnet18", "timm:resnet18", 128), ("resnet34", "timm:resnet34", 112), ("resnet50", "timm:resnet50", 112),
    ("resnet10t", "timm:resnet10t", 160), ("resnet26", "timm:resnet26", 112), ("hardcorenas_a", "timm:hardcorenas_a", 160),
    ("mobilenetv2_100", "timm:mobilenetv2_100", 160), ("mobilenetv3_large_100", "timm:mobilenetv3_large_100", 160),
    ("mobilenetv3_small_100", "timm:mobilenetv3_small_100", 224), ("efficientnet_b0", "timm:efficientnet_b0", 160),
    ("efficientnet_lite0", "timm:efficientnet_lite0", 160), ("ghostnet_100", "timm:ghostnet_100", 160),
    ("regnetx_002", "timm:regnetx_002", 160), ("regnety_004", "timm:regnety_004", 160),
    ("repvgg_a0", "timm:repvgg_a0", 128), ("mobileone_s0", "timm:mobileone_s0", 160),
    ("convnext_atto", "timm:convnext_atto", 128), ("mnasnet_100", "timm:mnasnet_100", 160),
    ("densenet121", "timm:densenet121", 96), ("lcnet_050", "timm:lcnet_050", 224), ("tinynet_e", "timm:tinynet_e", 160),
    ("fbnetc_100", "timm:fbnetc_100", 160), ("dla34", "timm:dla34", 96), ("rexnet_100", "timm:rexnet_100", 160),
    ("mixnet_s", "timm:mixnet_s", 160), ("mobilevit_xxs", "timm:mobilevit_xxs", 128),
    ("vit_tiny_patch16", "timm:vit_tiny_patch16_224", 96),
    ("yolov8n", "edgedeploy.zoo.latency_archs:yolov8n", 256), ("yolov6n", "edgedeploy.zoo.latency_archs:yolov6n", 256),
    ("yolov7t", "edgedeploy.zoo.latency_archs:yolov7t", 224),
    ("deeplabv3_mnv2", "edgedeploy.zoo.latency_archs:deeplabv3_mnv2", 192),
    ("digits_cnn", "digits-cnn", 32),
)


def build(source: str, side: int) -> Any:
    """The torch module of one entry (random init, eval mode)."""
    import torch

    torch.manual_seed(0)
    if source.startswith("timm:"):
        sys.path.insert(0, str(ROOT / "tests" / "outside"))
        import torchvision_absent

        torchvision_absent.install()
        import timm

        name = source[5:]
        kwargs = {"img_size": side} if name.startswith("vit_") else {}
        return timm.create_model(name, pretrained=False, **kwargs).eval()
    from edgedeploy.modelref import load_model

    return load_model(source)


def input_shape(source: str, side: int) -> tuple[int, ...]:
    """NCHW input of one entry (the digits CNN takes one channel)."""
    return (1, 1, side, side) if source == "digits-cnn" else (1, 3, side, side)


def measure_cpu(csv_path: Path, onnx_dir: Path, runtimes: tuple[str, ...] = ("onnxruntime", "openvino"),
                rounds: int = 5, repeats: int = 15, limit: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """Export and time every architecture on each runtime (1 thread); write one CSV per runtime; return the rows."""
    import torch
    from rich.progress import Progress

    from edgedeploy.export.onnx import OnnxConfig, export_onnx
    from edgedeploy.metrics.hostinfo import host_info
    from edgedeploy.runtime import load

    torch.set_num_threads(1)
    archs = CPU_ARCHS[:limit] if limit else CPU_ARCHS
    sessions: dict[tuple[str, str], Any] = {}
    paths: dict[str, Path] = {}
    with Progress(transient=True) as bar:
        task = bar.add_task("export", total=len(archs))
        for label, source, side in archs:
            model = build(source, side)
            x = torch.randn(input_shape(source, side), generator=torch.Generator().manual_seed(0))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                paths[label] = export_onnx(model, (x,), OnnxConfig(exporter="torchscript", opset=17, atol=1e-3,
                                                                   rtol=1e-3, fallback=True), out=onnx_dir, name=label).path
            for rt in runtimes:
                sessions[(label, rt)] = load(paths[label], runtime=rt, threads=1)
            bar.advance(task)
        medians: dict[tuple[str, str], list[float]] = {k: [] for k in sessions}
        walls: dict[tuple[str, str], list[float]] = {k: [] for k in sessions}
        task = bar.add_task("time", total=rounds * len(sessions))
        for _ in range(rounds):
            for key, session in sessions.items():
                cpu, wall = _time(session, repeats)
                medians[key].append(cpu)
                walls[key].append(wall)
                bar.advance(task)
    host = host_info()
    today = datetime.date.today().isoformat()
    out: dict[str, list[dict[str, Any]]] = {}
    for rt in runtimes:
        rows = []
        for label, source, side in archs:
            ms, wall = medians[(label, rt)], walls[(label, rt)]
            rows.append({"model": str(paths[label]), "input_shape": "x".join(map(str, input_shape(source, side))),
                         "latency_ms": round(statistics.median(ms), 4), "label": label,
                         "source": f"measured on {host.cpu_model} ({host.cores} usable cores)",
                         "conditions": f"{rt}, 1 thread, fp32, process CPU time per inference, median of {rounds} "
                                       f"round medians x {repeats} runs (round spread {min(ms):.3f}-{max(ms):.3f} "
                                       f"ms); wall-clock median {statistics.median(wall):.3f} ms on the shared host",
                         "date": today, "wall_ms": round(statistics.median(wall), 4)})
        path = csv_path.with_name(csv_path.stem + f"_{rt}.csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        out[rt] = rows
    return out


def _time(session: Any, repeats: int) -> tuple[float, float]:
    """Median process CPU time and median wall time (ms) of ``repeats`` inferences after 3 warm-up calls."""
    import time

    from edgedeploy.metrics.latency import measure

    arrays = session.example_inputs()
    cpu: list[float] = []

    def call(a: Any) -> None:
        t0 = time.process_time()
        session._infer(a)               # what runtime.benchmark times: the runtime call alone
        cpu.append((time.process_time() - t0) * 1e3)

    wall = measure(call, (arrays,), warmup=3, repeats=repeats, threads=1)
    return statistics.median(cpu[3:]), wall.median_ms


if __name__ == "__main__":
    from edgedeploy.metrics.hostinfo import host_info

    print(f"# host: {host_info()}")
    res = measure_cpu(ROOT / "bench-results" / "cpu_measurements", ROOT / "build" / "latency_cpu")
    for rt, rows in res.items():
        for r in rows:
            print(rt, r["label"], r["latency_ms"], r["conditions"])
