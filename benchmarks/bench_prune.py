"""Channel pruning on a small ResNet on digits: ours (edgedeploy.prune + distillation) beside plain Torch-Pruning.

For 30/50/70% channel ratios, in one run and on the same trained model: MACs, params, latency measured on
ONNX Runtime and OpenVINO (1 and 2 threads), and top-1 after the same fine-tune budget (ours: distillation
from the unpruned model; peer: Torch-Pruning's MetaPruner + plain cross-entropy fine-tune). Element and 2:4
shape sparsity are timed too, to show their honest dense-runtime speed (none).
Peer reference (issue 7): 50% channels -> MACs x0.253, ONNX Runtime latency x0.26, -0.28 pt after an 8 s fine-tune.

Usage: python benchmarks/bench_prune.py [--ratios 0.3,0.5,0.7] [--epochs 8] [--batch 32] [--repeats 30]
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from _common import banner, save
from rich.console import Console
from rich.table import Table
from torch import nn

from edgedeploy.compress.distill import DistillConfig, distill
from edgedeploy.compress.prune import PruneConfig, prune
from edgedeploy.export.onnx import OnnxConfig, export_onnx
from edgedeploy.metrics.profile import profile
from edgedeploy.runtime import benchmark, load
from edgedeploy.zoo.digits import accuracy, load_digits_data, train_classifier
from edgedeploy.zoo.digits_resnet import digits_resnet

console = Console(width=200)
RUNTIMES = (("onnxruntime", 1), ("onnxruntime", 2), ("openvino", 1), ("openvino", 2))


def latencies(model: nn.Module, x: torch.Tensor, folder: Path, name: str, repeats: int) -> dict[str, float]:
    """Fastest ms per runtime/thread count (the least load-sensitive statistic on a shared machine); the ONNX
    file is exported once, parity-checked, and shared by both runtimes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = export_onnx(model.eval(), (x,), OnnxConfig(exporter="torchscript", opset=17), out=folder, name=name).path
    out = {}
    for rt, threads in RUNTIMES:
        session = load(path, runtime=rt, threads=threads)
        out[f"{rt}/{threads}t"] = benchmark(session, [x.numpy()], repeats=repeats, warmup=10).min_ms
    return out


def peer_prune(model: nn.Module, x: torch.Tensor, ratio: float) -> nn.Module:
    """Plain Torch-Pruning: MetaPruner, group L2 magnitude, same ratio, classifier ignored."""
    import torch_pruning as tp

    m = copy.deepcopy(model).eval()
    pruner = tp.pruner.MetaPruner(m, x, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  pruning_ratio=ratio, ignored_layers=[m.fc])
    pruner.step()
    return m


def row(name: str, model: nn.Module, x1: torch.Tensor, xb: torch.Tensor, data: Any, folder: Path, repeats: int,
        extra: dict[str, Any]) -> dict[str, Any]:
    """Measure one model: MACs/params (profiler), top-1 and latencies."""
    prof = profile(model, x1)
    return {"name": name, "macs": prof.macs, "params": prof.params,
            "top1": accuracy(model, data.x_test, data.y_test), **extra,
            "latency_ms": latencies(model, xb, folder, name.replace(" ", "_").replace("%", ""), repeats)}


def add_ratios(rows: list[dict[str, Any]], base: dict[str, Any]) -> None:
    """MACs, latency and top-1 of every row relative to the dense baseline."""
    for r in rows:
        r["macs_ratio"] = r["macs"] / base["macs"]
        r["latency_ratio"] = {k: v / base["latency_ms"][k] for k, v in r["latency_ms"].items()}
        r["top1_delta"] = r["top1"] - base["top1"]


def table(rows: list[dict[str, Any]]) -> Table:
    t = Table(title="channel pruning on digits-resnet: ours (prune + KD) vs plain Torch-Pruning (+ CE fine-tune)")
    cols = ["model", "MACs", "xMACs", "params", "top-1", "d top-1", "fine-tune s"] + [f"{r}/{n}t min ms (x)" for r, n in RUNTIMES]
    for c in cols:
        t.add_column(c, justify="left" if c == "model" else "right")
    for r in rows:
        lat = [f"{r['latency_ms'][f'{rt}/{n}t']:.3f} ({r.get('latency_ratio', {}).get(f'{rt}/{n}t', 1.0):.2f})"
               for rt, n in RUNTIMES]
        t.add_row(r["name"], f"{r['macs']:,}", f"{r.get('macs_ratio', 1.0):.3f}", f"{r['params']:,}",
                  f"{r['top1']:.2f}", f"{r.get('top1_delta', 0.0):+.2f}", f"{r.get('finetune_s', 0.0):.1f}", *lat)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratios", default="0.3,0.5,0.7")
    ap.add_argument("--epochs", type=int, default=8, help="fine-tune epochs, same for ours and the peer")
    ap.add_argument("--batch", type=int, default=32, help="batch timed on the runtimes")
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    host = banner("bench_prune: channel / element / 2:4 pruning, measured on ONNX Runtime and OpenVINO")
    torch.set_num_threads(1)
    data = load_digits_data()
    model = digits_resnet(pretrained=True)
    x1, xb = data.x_test[:1], data.x_test[:args.batch]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        base = row("dense", model, x1, xb, data, folder, args.repeats, {})
        rows.append(base)
        for ratio in (float(r) for r in args.ratios.split(",")):
            pct = f"{round(ratio * 100)}%"
            ours = prune(model, PruneConfig("channel", "local", ratio), x1, progress=False).model
            t0 = time.perf_counter()
            ours = distill(ours, model, data, DistillConfig(epochs=args.epochs), progress=False).model
            t_ours = time.perf_counter() - t0
            rows.append(row(f"ours {pct}", ours, x1, xb, data, folder, args.repeats,
                            {"ratio": ratio, "finetune_s": t_ours, "method": "edgedeploy prune + distill"}))
            peer = peer_prune(model, x1, ratio)
            t0 = time.perf_counter()
            train_classifier(peer, data, epochs=args.epochs)
            t_peer = time.perf_counter() - t0
            rows.append(row(f"peer {pct}", peer, x1, xb, data, folder, args.repeats,
                            {"ratio": ratio, "finetune_s": t_peer, "method": "torch-pruning MetaPruner + CE"}))
        for label, cfg in (("element 50%", PruneConfig("element", "global", 0.5)),
                           ("shape 2:4", PruneConfig("shape", amount=0.5))):
            res = prune(model, cfg, x1, progress=False)
            rows.append(row(label, res.model, x1, xb, data, folder, args.repeats,
                            {"sparsity": res.report.sparsity, "sparse_size_bytes": res.report.sparse_size_bytes,
                             "effective_macs": res.report.effective_macs, "method": "masks, dense runtime"}))
        again = latencies(model, xb, folder, "dense_again", args.repeats)   # the dense model timed again at the end
        base["latency_ms"] = {k: min(v, again[k]) for k, v in base["latency_ms"].items()}
    add_ratios(rows, base)
    console.print(table(rows))
    verdicts = []
    for ratio in (float(r) for r in args.ratios.split(",")):
        pct = f"{round(ratio * 100)}%"
        o, p = (next(r for r in rows if r["name"] == f"{w} {pct}") for w in ("ours", "peer"))
        lat = {k: o["latency_ms"][k] / p["latency_ms"][k] for k in o["latency_ms"]}
        verdicts.append({"ratio": ratio, "macs_ours_over_peer": o["macs"] / p["macs"], "latency_ours_over_peer": lat,
                         "top1_ours_minus_peer": o["top1"] - p["top1"]})
        console.print(f"{pct}: MACs ours/peer {o['macs'] / p['macs']:.3f}; latency ours/peer "
                      + ", ".join(f"{k} {v:.2f}" for k, v in lat.items())
                      + f"; top-1 ours {o['top1']:.2f} vs peer {p['top1']:.2f} ({o['top1'] - p['top1']:+.2f} pt)")
    for r in rows:
        if r["name"] in ("element 50%", "shape 2:4"):
            console.print(f"{r['name']}: {100 * r['sparsity']:.1f}% zeros, dense-runtime latency ratio "
                          + ", ".join(f"{k} x{v:.2f}" for k, v in r["latency_ratio"].items())
                          + f" (MACs a sparse kernel would do: x{r['effective_macs'] / base['macs']:.2f})")
    console.print("ours and the peer cut the same channels' count per layer (same MACs): latency differences "
                  "between them are measurement noise; the accuracy column is where distillation shows")
    save("bench_prune", {"host": host, "latency_statistic": "min ms over repeats", "model": "digits-resnet (width 16, 2 blocks/stage)", "batch": args.batch,
                         "epochs": args.epochs, "rows": rows, "ours_vs_peer": verdicts,
                         "peer_reference": {"macs_ratio": 0.253, "ort_latency_ratio": 0.26, "top1_delta": -0.28}})


if __name__ == "__main__":
    main()
