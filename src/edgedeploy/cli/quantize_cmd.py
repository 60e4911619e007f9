"""CLI command ``quantize``: FP16 / INT8 / QAT through a chosen backend, with a before/after report."""
from __future__ import annotations

from pathlib import Path

import typer

from .app import app, console
from .options import CALIB_HELP, MODEL_HELP, calib_data, model_and_shape, trust_option


@app.command("quantize")
def quantize_cmd(
    model: str = typer.Argument(..., help=MODEL_HELP),
    mode: str = typer.Option("int8-static", "--mode", "-m", help="fp16, int8-static, int8-dynamic or qat"),
    backend: str = typer.Option("onnxruntime", "--backend", "-b", help="onnxruntime, openvino, torch, qnn"),
    calib: str | None = typer.Option(None, "--calib", help=CALIB_HELP),
    calib_mean: str | None = typer.Option(None, "--calib-mean", help="image folders: per-channel mean (pixels)"),
    calib_scale: str | None = typer.Option(None, "--calib-scale", help="image folders: per-channel scale (pixels)"),
    eval_spec: str | None = typer.Option(None, "--eval", help="evaluation data (same kinds as --calib; 'digits' "
                                         "evaluates on its held-out split automatically)"),
    out: Path = typer.Option(Path("build/quantized"), "--out", "-o", help="output folder"),
    input: str | None = typer.Option(None, "--input", "-i", help="input shape NxCxHxW for a torch model"),  # noqa: A002
    ignore: list[str] = typer.Option([], "--ignore", help="layer kept in float (repeatable)"),
    per_tensor: bool = typer.Option(False, "--per-tensor", help="per-tensor weight scales (default per-channel)"),
    calibration: str = typer.Option("minmax", "--calibration", help="minmax, entropy or percentile"),
    budget: float | None = typer.Option(None, "--budget", help="mixed precision: max top-1 drop in points"),
    keep_float: int = typer.Option(0, "--keep-float", min=0,
                                   help="keep the N most sensitive layers in float (chosen on the calibration data)"),
    pretrained: bool = typer.Option(False, "--pretrained", help="ask the zoo factory for trained weights"),
    trust_pickle: bool = trust_option(),
) -> None:
    """Quantize MODEL and print size, accuracy, latency, energy and per-layer error before/after."""
    import numpy as np

    from ..compress.quantize import QuantConfig, mixed_precision, quantize

    config = QuantConfig(mode=mode, backend=backend, per_channel=False if per_tensor else None,
                         calibration=calibration, ignored=tuple(ignore), keep_float=keep_float)
    net, shape = model_and_shape(model, input, pretrained, trust_pickle)
    data = calib_data(calib, shape, calib_mean, calib_scale)
    splits = data is not None and hasattr(data, "train") and hasattr(data, "test")
    eval_data = data if splits else calib_data(eval_spec, shape, calib_mean, calib_scale, role="evaluation")
    example = None if isinstance(net, Path) else np.zeros(shape, np.float32)
    kw = dict(calibration=data, eval_data=eval_data, train_data=data if mode == "qat" else None, out=out)
    if budget is not None:
        result = mixed_precision(net, config, budget=budget, show=False, example_inputs=example, **kw)
    else:
        result = quantize(net, config, example_inputs=example, **kw)
    console.print(result.report.summary_table())
    console.print(result.report.layer_table())
    for note in result.report.notes:
        console.print(f"note: {note}")
    console.print(f"artifact: {result.path}  (report: {out / 'quant_report.json'})")
