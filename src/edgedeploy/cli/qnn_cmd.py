"""CLI command ``qnn``: compile MODEL into a QNN HTP context binary for a Snapdragon SoC and verify it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .app import app, console
from .options import CALIB_HELP, MODEL_HELP, calib_data, model_and_shape, trust_option


def figures_table(details: dict[str, Any]) -> Any:
    """The HTP-vs-references table of an export_qnn result."""
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
    model: str = typer.Argument(..., help=MODEL_HELP),
    soc: str = typer.Option("SM8650", "--soc", help="Snapdragon SoC (e.g. SM8650, SM8750, SC8380XP) or QNN id"),
    calib: str | None = typer.Option(None, "--calib", help=CALIB_HELP),
    calib_mean: str | None = typer.Option(None, "--calib-mean", help="image folders: per-channel mean (pixels)"),
    calib_scale: str | None = typer.Option(None, "--calib-scale", help="image folders: per-channel scale (pixels)"),
    out: Path = typer.Option(Path("build/qnn"), "--out", "-o", help="output folder"),
    input: str | None = typer.Option(None, "--input", "-i", help="input shape NxCxHxW (torch models)"),  # noqa: A002
    activations: str = typer.Option("mixed", "--activations", "-a", help="u8, u16, mixed (u8/u16 by sensitivity) "
                                    "or fp16"),
    weights: str = typer.Option("u8", "--weights", help="u8 or s8 (symmetric per-channel)"),
    htp_arch: int | None = typer.Option(None, "--htp-arch", help="HTP arch (68..81); default: the SoC's"),
    embed: bool = typer.Option(True, "--embed/--no-embed", help="context binary inside _ctx.onnx or beside it"),
    pretrained: bool = typer.Option(False, "--pretrained", help="zoo models: build the trained variant"),
    samples: int = typer.Option(200, "--samples", min=1, help="held-out samples for the parity check"),
    trust_pickle: bool = trust_option(),
) -> None:
    """Quantize MODEL for Qualcomm's HTP, compile an offline QNN context binary and check it on QNN HTP."""
    from ..compress.quantize.qnn import export_qnn
    from ..export.qnn import QnnConfig

    config = QnnConfig(soc_model=soc, htp_arch=htp_arch, activations=activations, weights=weights, embed=embed,
                       eval_samples=samples)          # validates SoC/arch/precision before any slow step
    net, shape = model_and_shape(model, input, pretrained, trust_pickle)
    data = calib_data(calib, shape, calib_mean, calib_scale)
    example = None
    if not isinstance(net, Path):
        import torch

        example = torch.zeros(shape)
    result = export_qnn(net, config, calibration=data, example_inputs=example, out=out)
    console.print(result)
    console.print(figures_table(result.details))
    console.print("[dim]QNN HTP ran in x86 emulation: for device latency use `edgedeploy check MODEL --target "
                  "qualcomm-htp` (a roofline estimate).[/]")
