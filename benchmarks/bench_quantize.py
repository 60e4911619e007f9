"""Quantization side by side: FP32 vs our INT8 defaults vs plain ONNX Runtime quantize_static / NNCF defaults.

Models: the digits CNN (real data: top-1), a ResNet-18-size CNN at 224x224 with random weights (latency and
logit error only), and the real MiniLM-L6 sentence encoder (INT8 dynamic: cosine vs FP32). Latency at batch 1
with one and two threads, each INT8 model against FP32 on the same runtime. Writes bench-results/bench_quantize.json.
Run: .venv/bin/python benchmarks/bench_quantize.py [--quick]
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import banner, save  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
QUICK = "--quick" in sys.argv
REPEATS = 10 if QUICK else 30
THREADS = (1, 2)


def resnet18(num_classes: int = 1000) -> Any:
    """A ResNet-18-shaped CNN (BasicBlocks 2-2-2-2, 64..512 channels), random weights: for latency only."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + self.skip(x))

    layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    torch.manual_seed(0)
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes)).eval()
    with torch.no_grad():                       # give BN realistic statistics so activations are not degenerate
        model.train()
        for _ in range(3):
            model(torch.randn(8, 3, 224, 224))
        model.eval()
    return model


def latency(path: Path, runtime: str, feed: dict[str, np.ndarray], threads: int, **opts: Any) -> float:
    from edgedeploy.runtime import benchmark, load

    return benchmark(load(path, runtime=runtime, threads=threads, **opts), feed, warmup=3, repeats=REPEATS).median_ms


def run_all(path: Path, runtime: str, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    from edgedeploy.runtime import load

    s = load(path, runtime=runtime)
    return np.concatenate([s.run(f)[0] for f in feeds])


def peer_ort_static(src: Path, dest: Path, calib: list[dict[str, np.ndarray]]) -> Path:
    """onnxruntime.quantization.quantize_static with its defaults (QDQ, s8 activations, per-tensor s8 weights)."""
    from onnxruntime.quantization import quantize_static

    class Reader:
        def __init__(self) -> None:
            self.it = iter(calib)

        def get_next(self) -> Any:
            return next(self.it, None)

    quantize_static(str(src), str(dest), Reader())
    return dest


def peer_nncf(src: Path, dest: Path, calib: list[dict[str, np.ndarray]]) -> Path:
    """nncf.quantize with its defaults on the OpenVINO model, saved as IR."""
    import nncf
    import openvino as ov

    samples = [{k: v[i:i + 1] for k, v in f.items()} for f in calib for i in range(len(next(iter(f.values()))))]
    q = nncf.quantize(ov.convert_model(str(src)), nncf.Dataset(samples), subset_size=min(300, len(samples)))
    ov.save_model(q, str(dest))
    return dest


def compare_cnn(name: str, model: Any, calib_x: np.ndarray, eval_x: np.ndarray, labels: np.ndarray | None,
                work: Path) -> list[dict[str, Any]]:
    """FP32 / ours / peers on ONNX Runtime and OpenVINO for one CNN."""
    from edgedeploy.compress.quantize import QuantConfig, quantize

    calib = [{"input": calib_x[i:i + 16]} for i in range(0, len(calib_x), 16)]
    evf = [{"input": eval_x[i:i + 64]} for i in range(0, len(eval_x), 64)]
    one = {"input": eval_x[:1]}
    ours_ort = quantize(model, QuantConfig(mode="int8-static", backend="onnxruntime"), calibration=calib_x,
                        example_inputs=eval_x[:1], out=work / "ours_ort", per_layer=False, latency=False)
    ours_ov = quantize(model, QuantConfig(mode="int8-static", backend="openvino"), calibration=calib_x,
                       example_inputs=eval_x[:1], out=work / "ours_ov", per_layer=False, latency=False)
    fp32 = ours_ort.fp32_onnx
    from edgedeploy.compress.quantize.backends.openvino_backend import _save_ir

    fp32_ir = _save_ir(fp32, work / "fp32.xml", fp16=False)
    variants = [
        ("fp32", fp32, "onnxruntime", {}), ("ours int8", ours_ort.path, "onnxruntime", {}),
        ("ort quantize_static defaults", peer_ort_static(fp32, work / "ort_default.onnx", calib), "onnxruntime", {}),
        ("fp32", fp32_ir, "openvino", {}), ("fp32 (plugin default: bf16)", fp32_ir, "openvino", {"precision_hint": ""}),
        ("ours int8", ours_ov.path, "openvino", {}),
        ("nncf defaults", peer_nncf(fp32, work / "nncf_default.xml", calib), "openvino", {}),
    ]
    ref = {rt: run_all(p, rt, evf) for _, p, rt, _ in variants[:1] + variants[3:4]}
    rows = []
    for label, path, rt, opts in variants:
        out = run_all(path, rt, evf)
        row = {"model": name, "runtime": rt, "variant": label,
               "max_abs_logit_error": float(np.abs(out - ref[rt]).max()),
               "rel_logit_error": float(np.abs(out - ref[rt]).max() / np.abs(ref[rt]).max()),
               "top1": float(100 * np.mean(out.argmax(1) == labels)) if labels is not None else None}
        for t in THREADS:
            row[f"latency_ms_{t}t"] = latency(path, rt, one, t, **opts)
        rows.append(row)
    for row in rows:
        base = next(r for r in rows if r["runtime"] == row["runtime"] and r["variant"] == "fp32")
        for t in THREADS:
            row[f"speedup_{t}t"] = base[f"latency_ms_{t}t"] / row[f"latency_ms_{t}t"]
        if row["top1"] is not None:
            row["top1_drop"] = base["top1"] - row["top1"]
    return rows


def compare_minilm(work: Path) -> list[dict[str, Any]]:
    """FP32 vs our INT8 dynamic (per-channel; all, minus 6 FFN layers, minus the 1 most sensitive) vs ORT defaults."""
    from onnxruntime.quantization import quantize_dynamic

    from edgedeploy.compress.quantize import QuantConfig, quantize
    from edgedeploy.zoo import minilm

    fp32 = minilm.export_onnx(work / "minilm.onnx")
    feed = minilm.tokenize()
    ours = quantize(fp32, QuantConfig(mode="int8-dynamic"), eval_data=feed, out=work / "ml_ours", per_layer=False,
                    latency=False)
    ffn = tuple(ly.module for ly in ours.report.layers if ly.module.endswith("output.dense") and "attention" not in ly.module)
    keep = quantize(fp32, QuantConfig(mode="int8-dynamic", ignored=ffn), eval_data=feed, out=work / "ml_keep",
                    per_layer=False, latency=False)
    one_f = quantize(fp32, QuantConfig(mode="int8-dynamic", keep_float=1),
                     calibration=minilm.tokenize(minilm.CALIBRATION_SENTENCES), eval_data=feed, out=work / "ml_one",
                     per_layer=False, latency=False)
    print(f"# {one_f.report.notes[-1]}")
    peer = work / "ml_peer.onnx"
    quantize_dynamic(str(fp32), str(peer))
    ref = run_all(fp32, "onnxruntime", [feed])
    one = {k: v[:1] for k, v in feed.items()}
    rows = []
    for label, path in (("fp32", fp32), ("ours int8-dynamic (per-channel)", ours.path),
                        ("ours, FFN down-projections kept fp32", keep.path),
                        ("ours keep_float=1 (chosen on 12 other sentences)", one_f.path),
                        ("ort quantize_dynamic defaults", peer)):
        emb = run_all(path, "onnxruntime", [feed])
        cos = np.sum(emb * ref, 1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1))
        row = {"model": "MiniLM-L6", "runtime": "onnxruntime", "variant": label, "cosine_mean": float(cos.mean()),
               "cosine_min": float(cos.min())}
        for t in THREADS:
            row[f"latency_ms_{t}t"] = latency(path, "onnxruntime", one, t)
        rows.append(row)
    for row in rows:
        for t in THREADS:
            row[f"speedup_{t}t"] = rows[0][f"latency_ms_{t}t"] / row[f"latency_ms_{t}t"]
    return rows


def show(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    keys = [k for k in rows[0] if k != "model"]
    for k in keys:
        t.add_column(k.replace("_", " "), justify="left" if k in ("runtime", "variant") else "right")
    for r in rows:
        t.add_row(*[f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in keys])
    Console(width=200).print(t)


def main() -> None:
    import torch

    host = banner("bench_quantize: FP32 vs our INT8 defaults vs plain ONNX Runtime / NNCF defaults")
    from edgedeploy.zoo.digits import digits_cnn, load_digits_data

    results: dict[str, Any] = {"host": host, "repeats": REPEATS, "threads": THREADS}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        d = load_digits_data()
        torch.manual_seed(0)
        cnn = digits_cnn(pretrained=True)
        rows = compare_cnn("digits-cnn", cnn, d.x_train.numpy()[:320], d.x_test.numpy(), d.y_test.numpy(),
                           work / "digits")
        show(rows, "digits CNN (1x16x16, real test set, 449 images)")
        results["digits_cnn"] = rows
        rng = np.random.default_rng(0)
        x = rng.random((48 if QUICK else 96, 3, 224, 224), dtype=np.float32)
        rows = compare_cnn("resnet18-224", resnet18(), x[:32], x[32:], None, work / "resnet")
        show(rows, "ResNet-18-size CNN at 224x224 (random weights: latency and logit error only)")
        results["resnet18_224"] = rows
        try:
            rows = compare_minilm(work / "minilm")
        except ImportError as exc:              # the MiniLM package is a dev dependency
            print(f"# MiniLM skipped: {exc}")
        else:
            show(rows, "MiniLM-L6 sentence encoder, 32 sentences (INT8 dynamic)")
            results["minilm"] = rows
    save("bench_quantize", results)


if __name__ == "__main__":
    main()
