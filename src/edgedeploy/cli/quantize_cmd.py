"""CLI command ``quantize``: FP16 / INT8 / QAT through a chosen backend, with a before/after report."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .app import app, console

_CALIB_HELP = "calibration data: 'digits' (sklearn's real digits, resized to the model input) or a .npy file (N, ...)"


def _calibration(spec: str, shape: tuple[int, ...] | None) -> tuple[Any, Any]:
    """(calibration inputs, eval data or None) from --calib."""
    from ..errors import CalibrationError

    if spec == "digits":
        from ..zoo.digits import load_digits_data

        size, channels = (shape[-1], shape[1]) if shape and len(shape) == 4 else (16, 1)
        data = load_digits_data(size=size, channels=channels)
        return data.x_train, (data.x_test, data.y_test)
    path = Path(spec)
    if path.suffix != ".npy" or not path.is_file():
        raise CalibrationError(f"--calib {spec!r} is neither 'digits' nor an existing .npy file of inputs (N, ...)")
    import numpy as np

    return np.load(path), None


def _onnx_shape(path: Path) -> tuple[int, ...] | None:
    from ..compress.quantize.data import onnx_inputs

    spec = onnx_inputs(path)[0]
    return tuple(d or 1 for d in spec.shape)


@app.command("quantize")
def quantize_cmd(
    model: str = typer.Argument(..., help="package.module:factory, a zoo name, or an .onnx file"),
    mode: str = typer.Option("int8-static", "--mode", "-m", help="fp16, int8-static, int8-dynamic or qat"),
    backend: str = typer.Option("onnxruntime", "--backend", "-b", help="onnxruntime, openvino, torch, ..."),
    calib: str | None = typer.Option(None, "--calib", help=_CALIB_HELP),
    out: Path = typer.Option(Path("build/quantized"), "--out", "-o", help="output folder"),
    input: str | None = typer.Option(None, "--input", "-i", help="input shape NxCxHxW for a torch model"),  # noqa: A002
    ignore: list[str] = typer.Option([], "--ignore", help="layer kept in float (repeatable)"),
    per_tensor: bool = typer.Option(False, "--per-tensor", help="per-tensor weight scales (default per-channel)"),
    calibration: str = typer.Option("minmax", "--calibration", help="minmax, entropy or percentile"),
    budget: float | None = typer.Option(None, "--budget", help="mixed precision: max top-1 drop in points"),
    keep_float: int = typer.Option(0, "--keep-float", min=0,
                                   help="keep the N most sensitive layers in float (chosen on the calibration data)"),
    pretrained: bool = typer.Option(False, "--pretrained", help="ask the zoo factory for trained weights"),
) -> None:
    """Quantize MODEL and print size, accuracy, latency, energy and per-layer error before/after."""
    import numpy as np

    from ..compress.quantize import QuantConfig, quantize
    from ..compress.quantize.sensitivity import mixed_precision
    from ..errors import ShapeError
    from ..modelref import load_model, parse_shape

    config = QuantConfig(mode=mode, backend=backend, per_channel=not per_tensor, calibration=calibration,
                         ignored=tuple(ignore), keep_float=keep_float)
    shape = parse_shape(input) if input else None
    net = load_model(model, pretrained=True) if pretrained else load_model(model)
    if isinstance(net, Path):
        shape = shape or _onnx_shape(net)
    elif shape is None:
        raise ShapeError(f"model {model} is a torch module: give its input shape with --input, e.g. 1x1x16x16")
    calib_x, eval_data = _calibration(calib, shape) if calib else (None, None)
    example = None if isinstance(net, Path) else np.zeros(shape, dtype=np.float32)
    train = None
    if mode == "qat" and calib == "digits":
        from ..zoo.digits import load_digits_data

        d = load_digits_data(size=shape[-1], channels=shape[1])
        train = (d.x_train, d.y_train)
    kw = dict(calibration=calib_x, eval_data=eval_data, train_data=train, out=out)
    if budget is not None:
        result = mixed_precision(net, config, budget=budget, show=False, **kw)
    else:
        result = quantize(net, config, example_inputs=example, **kw)
    console.print(result.report.summary_table())
    console.print(result.report.layer_table())
    for note in result.report.notes:
        console.print(f"note: {note}")
    console.print(f"artifact: {result.path}  (report: {out / 'quant_report.json'})")
