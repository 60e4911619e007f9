"""Case study 2 (gaze correction by warping) end to end, side by side in one run.

* quality on 256 held-out synthetic pairs: L1 / SSIM / iris-centre error (px, degrees) vs the identity warp;
* temporal flicker on slowly moving videos, per frame vs with an EMA of the fields (goal: >= 50% less);
* per-eye-pair latency at 1 thread, warp included (goal <= 3 ms): torch, ONNX Runtime FP32 / FP16 weights,
  OpenVINO FP32 IR / FP16 IR with FP32 islands (f32 and the CPU plugin's default bf16 precision);
* FP16 IR parity without and with FP32 islands (and for tests/_export_models.FlowWarp, which fails today);
* the MyriadX split: blob size, what crosses, host-part cost;
* real photos (astronaut, grace_hopper, LFW faces): cascade eyes, corrected, before|after PNGs.
Writes bench-results/bench_gaze.json and bench-results/gaze_<photo>.png.
Run: .venv/bin/python benchmarks/bench_gaze.py [--quick]
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, banner, save  # noqa: E402

QUICK = "--quick" in sys.argv
REPEATS = 100 if QUICK else 400


def quality(model: Any) -> dict[str, Any]:
    from rich.console import Console

    from edgedeploy.zoo.gaze import evaluate_gaze, make_pairs, make_sequence, temporal_flicker

    scores = evaluate_gaze(model, make_pairs(64 if QUICK else 256, seed=123))
    flicker = [temporal_flicker(model, make_sequence(48, seed=s), alpha=0.3) for s in range(3)]
    console = Console()
    console.print(scores)
    for f in flicker:
        console.print(f)
    return {"held_out": scores.to_dict(), "flicker": [f.to_dict() for f in flicker],
            "flicker_reduction_pct_mean": float(np.mean([f.reduction_pct for f in flicker]))}


def real_photos(model: Any) -> dict[str, Any]:
    """Eyes found by the cascade in the photos that ship offline, corrected 10 degrees up; before|after PNGs."""
    from edgedeploy._io import write_bytes_atomic
    from edgedeploy.zoo.gaze import correct_photo, sample_photos

    out = {}
    for name, image in sample_photos(lfw_faces=4).items():
        result = correct_photo(model, image, angle=10.0, name=name)
        row = result.to_dict()
        row["mean_flow_dy_px"] = [float(f[[1, 5], 16:32, 20:44].mean()) for f in result.fields]   # > 0: raised
        if result.pairs:
            row["png"] = str(write_bytes_atomic(RESULTS / f"gaze_{name}.png", result.png()).name)
        out[name] = row
        print(f"{name:14s} {len(result.pairs)} face(s) with both eyes, {result.changed_pixels} pixels changed, "
              f"eye-centre flow dy {row['mean_flow_dy_px']}")
    return out


def _fp16_onnx(src: Path, dst: Path) -> Path:
    """ONNX Runtime FP16 weights and activations, GridSample's path kept FP32 by ORT's own converter."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, op_block_list=["GridSample"])
    onnx.save(model, str(dst))
    return dst


def latency_and_parity(model: Any, folder: Path) -> dict[str, Any]:
    import openvino as ov
    import torch

    from edgedeploy.export.fp32_islands import IslandsConfig, keep_fp32_islands
    from edgedeploy.export.onnx import OnnxConfig, export_onnx
    from edgedeploy.metrics.latency import measure
    from edgedeploy.runtime import benchmark, load
    from edgedeploy.zoo.gaze import make_pairs

    pairs = make_pairs(8, seed=99).inputs
    x = pairs[:1]
    with torch.no_grad():
        refs = [model(torch.from_numpy(pairs[i:i + 1])).numpy() for i in range(len(pairs))]
    onnx = {e: export_onnx(model, torch.from_numpy(x), OnnxConfig(exporter=e, opset=16 if e == "torchscript" else None),
                           out=folder, name=f"gaze_{e}") for e in ("dynamo", "torchscript")}
    src = onnx["dynamo"].path
    ov_model = ov.convert_model(str(src))
    eval_data = [pairs[i:i + 1] for i in range(len(pairs))]
    islands = {"f32": keep_fp32_islands(ov_model, eval_data, IslandsConfig(precision_hint="f32"))}
    ov.save_model(ov_model, str(folder / "gaze32.xml"), compress_to_fp16=False)
    ov.save_model(ov_model, str(folder / "gaze16_plain.xml"), compress_to_fp16=True)
    ov.save_model(islands["f32"].model, str(folder / "gaze16.xml"), compress_to_fp16=True)
    variants = {
        "onnxruntime FP32": load(src, runtime="onnxruntime", threads=1),
        "onnxruntime FP16 (GridSample FP32)": load(_fp16_onnx(src, folder / "gaze_fp16.onnx"), runtime="onnxruntime",
                                                  threads=1),
        "openvino FP32 IR": load(folder / "gaze32.xml", runtime="openvino", threads=1, precision_hint="f32"),
        "openvino FP16 IR, no islands (f32)": load(folder / "gaze16_plain.xml", runtime="openvino", threads=1,
                                                   precision_hint="f32"),
        "openvino FP16 IR + islands (f32)": load(folder / "gaze16.xml", runtime="openvino", threads=1,
                                                 precision_hint="f32"),
        "openvino FP16 IR, no islands (bf16 default)": load(folder / "gaze16_plain.xml", runtime="openvino",
                                                            threads=1, precision_hint="bf16"),
        "openvino FP16 IR + islands (bf16 default)": load(folder / "gaze16.xml", runtime="openvino", threads=1,
                                                          precision_hint="bf16"),
    }
    eager = measure(model, (torch.from_numpy(x),), repeats=REPEATS, threads=1)
    rows = {"torch eager": {"median_ms": eager.median_ms, "min_ms": eager.min_ms, "p90_ms": eager.p90_ms}}
    for name, session in variants.items():
        stats = benchmark(session, x, repeats=REPEATS, warmup=20)
        err = max(float(np.abs(session.run(p)[0] - r).max() / (r.max() - r.min())) for p, r in zip(eval_data, refs))
        rows[name] = {"median_ms": stats.median_ms, "min_ms": stats.min_ms, "p90_ms": stats.p90_ms,
                      "max_err_pct_of_range": 100 * err}
    print(f"# load average while timing: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared host)")
    for name, row in rows.items():
        extra = f", parity {row['max_err_pct_of_range']:.4f}% of range" if "max_err_pct_of_range" in row else ""
        print(f"{name:44s} median {row['median_ms']:.3f} ms (min {row['min_ms']:.3f}) per eye pair{extra}")
    return {"latency_1_thread": rows, "goal_ms": 3.0, "load_average": os.getloadavg()[0],
            "onnx": {e: r.to_dict() for e, r in onnx.items()},
            "fp16_islands": {h: r.to_dict() for h, r in islands.items()},
            "ir_bytes": {n: (folder / f"{n}.bin").stat().st_size for n in ("gaze32", "gaze16_plain", "gaze16")}}


def flow_warp_islands() -> dict[str, Any]:
    """The warp that fails FP16 parity today (tests/_export_models.FlowWarp): how big its FP32 island must be."""
    import openvino as ov
    import torch

    from edgedeploy.export.fp32_islands import keep_fp32_islands
    from edgedeploy.frames import camera_frames

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from _export_models import flow_warp

    frames = camera_frames(2, 96, 160, 3, order="RGB", layout="NCHW").astype(np.float32)
    noise = (np.random.default_rng(0).random((1, 3, 96, 160)) * 255).astype(np.float32)
    model = ov.convert_model(flow_warp(), example_input=torch.zeros(1, 3, 96, 160),
                             input=[ov.PartialShape([1, 3, 96, 160])])
    result = keep_fp32_islands(model, [frames[0:1], frames[1:2], noise])
    print(f"FlowWarp FP16 IR: max abs {result.max_abs_before:.3g} ({100 * result.err_before:.2f}% of range) -> "
          f"{result.max_abs_after:.3g} with {len(result.kept)} ops FP32 after {result.rounds} rounds "
          f"(per round: {', '.join(f'{100 * e:.3f}%' for e in result.history)})")
    return result.to_dict()


def split_and_blob(folder: Path, src: Path, model: Any) -> dict[str, Any]:
    from rich.console import Console

    from edgedeploy.export.blob import BlobConfig, export_blob
    from edgedeploy.export.split import SplitConfig, split_model
    from edgedeploy.zoo.gaze import make_pairs

    pairs = make_pairs(4, seed=5).inputs
    eval_data = [pairs[i:i + 1] for i in range(len(pairs))]
    split = split_model(src, SplitConfig(benchmark_repeats=REPEATS), out=folder / "split", eval_data=eval_data)
    naive = split_model(src, SplitConfig(pull="none", benchmark_repeats=REPEATS), out=folder / "split_none",
                        eval_data=eval_data)
    Console().print(split)
    out: dict[str, Any] = {"split": split.to_dict(), "split_pull_none": naive.to_dict()}
    try:
        blob = export_blob(split.device, BlobConfig(shaves=6, cmx_slices=6), out=folder / "blob")
        out["blob"] = {"bytes": blob.path.stat().st_size, "details": blob.details}
        print(f"blob {blob.path.name}: {blob.path.stat().st_size} bytes, {blob.details['blob']['stages']} stages")
    except Exception as exc:  # noqa: BLE001 - the toolchain may be missing on a fresh machine: report it
        out["blob"] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"blob: {out['blob']['error']}")
    return out


def main() -> None:
    import torch

    from edgedeploy.zoo.gaze import GazeTrainConfig, pretrained_gaze

    host = banner("gaze correction (case study 2): quality, flicker, latency per eye pair, FP16 islands, MyriadX split")
    torch.set_num_threads(1)
    recipe = GazeTrainConfig.quick() if QUICK else GazeTrainConfig()
    model = pretrained_gaze(recipe)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        payload: dict[str, Any] = {"host": host, "recipe": recipe.digest(), "quality": quality(model),
                                   "photos": real_photos(model)}
        payload["deploy"] = latency_and_parity(model, folder)
        payload["flow_warp_islands"] = flow_warp_islands()
        payload["myriadx"] = split_and_blob(folder, folder / "gaze_dynamo.onnx", model)
    save("bench_gaze", payload)


if __name__ == "__main__":
    main()
