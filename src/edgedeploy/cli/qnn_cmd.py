"""CLI command ``qnn``: compile MODEL into a QNN HTP context binary for a Snapdragon SoC and verify it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .app import app, console

_MODEL_HELP = "package.module:factory, a zoo name, or an .onnx file"


def calibration_data(calib: str, shape: tuple[int, ...]) -> Any:
    """``digits`` (sklearn's real digits resized to the model input) or a .npy file of samples (N, ...)."""
    from ..errors import CalibrationError

    if calib == "digits":
        if len(shape) != 4 or shape[2] != shape[3]:
            raise CalibrationError(f"--calib digits needs a square NxCxHxW image input, but the model takes "
                                   f"{'x'.join(map(str, shape))}; pass a .npy file of samples instead")
        from ..zoo.digits import load_digits_data

        return load_digits_data(size=shape[2], channels=shape[1])
    path = Path(calib)
    if path.suffix.lower() != ".npy" or not path.is_file():
        raise CalibrationError(f"--calib {calib!r} is neither 'digits' nor an existing .npy file of samples "
                               "shaped like the model input (N, C, H, W)")
    import numpy as np

    return np.load(path).astype(np.float32)


def export_to_qnn(model_ref: str, input_shape: str | None, soc: str, calib: str | None, out: Path,
                  activations: str = "mixed", weights: str = "u8", htp_arch: int | None = None,
                  embed: bool = True, pretrained: bool = False, samples: int = 200, print_result: bool = True) -> Any:
    """Resolve MODEL and --calib, run ``export_qnn`` and print the result (shared with ``export --to qnn``)."""
    from ..errors import ShapeError
    from ..export.qnn import QnnConfig, export_qnn
    from ..modelref import load_model, parse_shape

    config = QnnConfig(soc_model=soc, htp_arch=htp_arch, activations=activations, weights=weights, embed=embed,
                       eval_samples=samples)          # validates SoC/arch/precision before any slow step
    shape = parse_shape(input_shape) if input_shape is not None else None
    model = load_model(model_ref, **({"pretrained": True} if pretrained and ":" not in model_ref
                                     and not model_ref.endswith(".onnx") else {}))
    if isinstance(model, Path):
        from ..compress.quantize.data import onnx_inputs

        shape = shape or tuple(d or 1 for d in onnx_inputs(model)[0].shape)
    elif shape is None:
        raise ShapeError(f"model {model_ref} is a torch module: give its input shape with --input, e.g. 1x1x16x16")
    data = calibration_data(calib, shape) if calib is not None else None
    example = None
    if not isinstance(model, Path):
        import torch

        example = torch.zeros(shape)
    result = export_qnn(model, config, calibration=data, example_inputs=example, out=out)
    if print_result:            # `export --to ...` prints every result itself
        console.print(result)
    console.print(_figures_table(result.details))
    console.print("[dim]QNN HTP ran in x86 emulation: for device latency use `edgedeploy check MODEL --target "
                  "qualcomm-htp` (a roofline estimate).[/]")
    return result


def _figures_table(details: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(title=f"QNN HTP v{details['htp_arch']} ({details['activations']}) vs references, "
                    f"{details['eval_samples']} samples")
    t.add_column("comparison")
    t.add_column("top-1 agreement", justify="right")
    t.add_column("max abs error", justify="right")
    for key, label in (("vs_torch", "HTP context vs FP32 torch"), ("vs_cpu_qdq", "HTP context vs CPU QDQ"),
                       ("cpu_qdq_vs_torch", "CPU QDQ vs FP32 torch")):
        if key in details:
            t.add_row(label, f"{details[key]['agreement']:.1%}", f"{details[key]['max_abs']:.4g}")
    if "top1" in details:
        t.add_row("accuracy on labels (HTP / torch)", f"{details['top1']['htp']:.1%} / {details['top1']['torch']:.1%}",
                  "")
    t.add_row("context size / compile time", f"{details['context_bytes'] / 1024:.1f} KiB",
              f"{details['compile_s']:.2f} s")
    return t


@app.command("qnn")
def qnn_cmd(
    model: str = typer.Argument(..., help=_MODEL_HELP),
    soc: str = typer.Option("SM8650", "--soc", help="Snapdragon SoC (e.g. SM8650, SM8750, SC8380XP) or QNN id"),
    calib: str | None = typer.Option(None, "--calib", help="'digits' or a .npy file of calibration samples"),
    out: Path = typer.Option(Path("build/qnn"), "--out", "-o", help="output folder"),
    input: str | None = typer.Option(None, "--input", "-i", help="input shape NxCxHxW (torch models)"),  # noqa: A002
    activations: str = typer.Option("mixed", "--activations", "-a", help="u8, u16, mixed (u8/u16 by sensitivity) "
                                    "or fp16"),
    weights: str = typer.Option("u8", "--weights", help="u8 or s8 (symmetric per-channel)"),
    htp_arch: int | None = typer.Option(None, "--htp-arch", help="HTP arch (68..81); default: the SoC's"),
    embed: bool = typer.Option(True, "--embed/--no-embed", help="context binary inside _ctx.onnx or beside it"),
    pretrained: bool = typer.Option(False, "--pretrained", help="zoo models: build the trained variant"),
    samples: int = typer.Option(200, "--samples", min=1, help="held-out samples for the parity check"),
) -> None:
    """Quantize MODEL for Qualcomm's HTP, compile an offline QNN context binary and check it on QNN HTP."""
    export_to_qnn(model, input, soc, calib, out, activations, weights, htp_arch, embed, pretrained, samples)
