"""Hardware-aware blocks on real runtimes: MACs (thop counting) and measured latency side by side.

Part 1 - the tutorial's on-device table: PixelShuffle vs TransposedConv2D (128 channels, stride 2) at 32/16/8 px,
measured on torch CPU, ONNX Runtime and OpenVINO CPU, printed beside the tutorial's MyriadX figures.
Part 2 - every block vs its Conv2D+BN+ReLU baseline at the tutorial's 352x1280 input (its table rows) on
ONNX Runtime and OpenVINO, plus PartialConv vs a depthwise 3x3 conv: fewer MACs is not always faster.

Usage: python benchmarks/bench_blocks.py [--size 352x1280] [--repeats 5] [--threads N]
"""
from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from _common import banner, save
from rich.console import Console
from rich.table import Table
from torch import nn

from edgedeploy.blocks import ConvBNAct, DenseFeatBlock, GhostConv2d, PartialConv2d, PixelShuffleUpsample
from edgedeploy.blocks import SpaceToDepthStem
from edgedeploy.blocks._cost import cost
from edgedeploy.export.onnx import OnnxConfig, export_onnx
from edgedeploy.runtime import benchmark, load

MYRIADX_MS = {("PixelShuffle", 32): 0.228, ("PixelShuffle", 16): 0.127, ("PixelShuffle", 8): 0.066,
              ("TransposedConv2D", 32): 2.988, ("TransposedConv2D", 16): 0.833, ("TransposedConv2D", 8): 0.236}
console = Console(width=190)


def _latencies(model: nn.Module, shape: tuple[int, ...], folder: Path, name: str, runtimes: tuple[str, ...],
               repeats: int, threads: int | None) -> dict[str, float]:
    """Best (min) and median ms per runtime (min is shown: the host is shared).

    The ONNX file is exported (with its parity check) once and shared by ONNX Runtime and OpenVINO.
    """
    model = model.eval()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    out: dict[str, float] = {}
    onnx_path = None
    for rt in runtimes:
        if rt == "torch":
            session = load(model, runtime="torch", threads=threads)
        else:
            if onnx_path is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    onnx_path = export_onnx(model, (x,), OnnxConfig(exporter="torchscript", opset=17),
                                            out=folder, name=name).path
            session = load(onnx_path, runtime=rt, threads=threads)
        stats = benchmark(session, [x.numpy()], repeats=repeats, warmup=2)
        out[rt], out[f"{rt}_median"] = stats.min_ms, stats.median_ms
    return out


def on_device_table(folder: Path, repeats: int, threads: int | None) -> list[dict[str, Any]]:
    """PixelShuffle (1x1 conv 128 -> 512 + shuffle) vs ConvTranspose2d(128, 128, 3, stride 2) at 32/16/8 px."""
    rows = []
    for px in (32, 16, 8):
        layers = {"PixelShuffle": PixelShuffleUpsample(128, 128, 2),
                  "TransposedConv2D": nn.ConvTranspose2d(128, 128, 3, 2, 1, output_padding=1)}
        for label, layer in layers.items():
            shape = (1, 128, px, px)
            ms = _latencies(layer, shape, folder, f"{label}_{px}".lower(), ("torch", "onnxruntime", "openvino"),
                            repeats * 4, threads)
            rows.append({"layer": label, "width": px, "height": px, "out_channels": 128, "stride": 2,
                         "macs": cost(layer, shape).macs, "myriadx_ms": MYRIADX_MS[(label, px)], **ms})
    t = Table(title="ON-DEVICE EXECUTION TIME: PixelShuffle vs TransposedConv2D (ms; ours = best of the repeats)")
    for col in ("Layer Type", "Width", "Height", "out_channels", "stride", "MACs", "MyriadX (tutorial)",
                "torch CPU", "ONNX Runtime", "OpenVINO CPU"):
        t.add_column(col, justify="left" if col == "Layer Type" else "right")
    for r in rows:
        t.add_row(r["layer"], str(r["width"]), str(r["height"]), "128", "2", f"{r['macs'] / 1e6:.1f} M",
                  f"{r['myriadx_ms']:.3f}", f"{r['torch']:.3f}", f"{r['onnxruntime']:.3f}", f"{r['openvino']:.3f}")
    console.print(t)
    for px in (32, 16, 8):
        ps, tc = (next(r for r in rows if r["layer"] == k and r["width"] == px)
                  for k in ("PixelShuffle", "TransposedConv2D"))
        console.print(f"  {px:>2} px: TransposedConv2D / PixelShuffle time = "
                      f"MyriadX {tc['myriadx_ms'] / ps['myriadx_ms']:.1f}x, "
                      f"torch {tc['torch'] / ps['torch']:.2f}x, ORT {tc['onnxruntime'] / ps['onnxruntime']:.2f}x, "
                      f"OpenVINO {tc['openvino'] / ps['openvino']:.2f}x")
    return rows


def _pairs() -> list[tuple[str, str, nn.Module, int, int]]:
    """(group, label, module, in_ch, out_ch): the tutorial's table rows plus depthwise baselines for PartialConv."""
    rows: list[tuple[str, str, nn.Module, int, int]] = []
    for cin, cout in ((1, 32), (32, 64)):
        rows += [("s2d", "Conv2D+BN+ReLU s2", ConvBNAct(cin, cout, 3, 2), cin, cout),
                 ("s2d", "SpaceToDepthStem", SpaceToDepthStem(cin, cout), cin, cout)]
    for cin, cout in ((32, 64), (64, 128)):
        rows += [("dense/ghost", "Conv2D+BN+ReLU s2", ConvBNAct(cin, cout, 3, 2), cin, cout),
                 ("dense/ghost", "DenseFeatBlock", DenseFeatBlock(cin, cout), cin, cout),
                 ("dense/ghost", "GhostConv2d", GhostConv2d(cin, cout, 3, 2), cin, cout)]
    for c in (32, 64):
        rows += [("partial", "Conv2D+BN+ReLU", ConvBNAct(c, c, 3, 1), c, c),
                 ("partial", "PartialConv2d", PartialConv2d(c), c, c),
                 ("partial", "DepthwiseConv+BN+ReLU", ConvBNAct(c, c, 3, 1, groups=c), c, c)]
    return rows


def block_table(folder: Path, size: tuple[int, int], repeats: int, threads: int | None) -> list[dict[str, Any]]:
    """Each block vs its Conv2D baseline (first row of each group/channels) on ONNX Runtime and OpenVINO."""
    from rich.progress import track

    rows, base = [], {}
    for group, label, module, cin, cout in track(_pairs(), description="blocks", console=console):
        shape = (1, cin, *size)
        macs = cost(module, shape).macs
        ms = _latencies(module, shape, folder, f"{label}_{cin}_{cout}".lower().replace("+", "_"),
                        ("onnxruntime", "openvino"), repeats, threads)
        key = (group, cin, cout)
        base.setdefault(key, (macs, ms))
        bm, bms = base[key]
        rows.append({"group": group, "layer": label, "in_ch": cin, "out_ch": cout, "macs": macs, **ms,
                     "macs_ratio": macs / bm, "ort_ratio": ms["onnxruntime"] / bms["onnxruntime"],
                     "ov_ratio": ms["openvino"] / bms["openvino"],
                     "ort_gmacs_per_s": macs / ms["onnxruntime"] / 1e6, "ov_gmacs_per_s": macs / ms["openvino"] / 1e6})
    t = Table(title=f"Blocks vs Conv2D baseline at {size[0]}x{size[1]} "
                    "(MACs thop; best-of-repeats ms; ratio = block / baseline)")
    for col in ("layer", "in", "out", "MACs", "MACs ratio", "ORT ms", "ORT ratio", "OV ms", "OV ratio",
                "ORT GMAC/s", "OV GMAC/s"):
        t.add_column(col, justify="left" if col == "layer" else "right")
    for r in rows:
        t.add_row(r["layer"], str(r["in_ch"]), str(r["out_ch"]), f"{r['macs'] / 1e6:,.1f} M", f"{r['macs_ratio']:.3f}",
                  f"{r['onnxruntime']:.2f}", f"{r['ort_ratio']:.2f}", f"{r['openvino']:.2f}", f"{r['ov_ratio']:.2f}",
                  f"{r['ort_gmacs_per_s']:.1f}", f"{r['ov_gmacs_per_s']:.1f}")
    console.print(t)
    for c in (32, 64):
        pc = next(r for r in rows if r["layer"] == "PartialConv2d" and r["in_ch"] == c)
        dw = next(r for r in rows if r["layer"].startswith("Depthwise") and r["in_ch"] == c)
        console.print(f"  {c} ch: PartialConv has {pc['macs'] / dw['macs']:.1f}x the MACs of a depthwise conv and runs "
                      f"at {pc['onnxruntime'] / dw['onnxruntime']:.2f}x its time on ORT, "
                      f"{pc['openvino'] / dw['openvino']:.2f}x on OpenVINO (GMAC/s {pc['ort_gmacs_per_s']:.1f} vs "
                      f"{dw['ort_gmacs_per_s']:.1f} on ORT)")
    return rows


def main() -> None:
    """Run both parts and write bench-results/bench_blocks.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="352x1280", help="HxW of the block table (the tutorial's: 352x1280)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    host = banner("bench_blocks: PixelShuffle vs TransposedConv2D; blocks vs Conv2D (MACs and time)")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        device = on_device_table(Path(tmp) / "upsample", args.repeats, args.threads)
        blocks = block_table(Path(tmp) / "blocks", size, args.repeats, args.threads)
    save("bench_blocks", {"host": host, "size": list(size), "repeats": args.repeats, "threads": args.threads,
                          "on_device": device, "blocks": blocks,
                          "versions": __import__("edgedeploy._io", fromlist=["x"]).package_versions(
                              "torch", "onnxruntime", "openvino")})


if __name__ == "__main__":
    main()
