"""CLI: ``targets`` (the shipped targets; ``--calibration``: their latency models' leave-one-out error) and
``targets calibrate TARGET --from measurements.csv`` (refit a target's latency model from your own runs)."""
from __future__ import annotations

from pathlib import Path

import typer

from .app import app, console, output_file

targets_app = typer.Typer(help="List the shipped targets; `targets calibrate` refits one's latency model.",
                          invoke_without_command=True, no_args_is_help=False)
app.add_typer(targets_app, name="targets")


@targets_app.callback()
def targets_cmd(
    ctx: typer.Context,
    calibration: bool = typer.Option(False, "--calibration", help="show each target's latency calibration: "
                                     "coefficients and the leave-one-out error of every measurement"),
) -> None:
    """List the shipped targets with their peak compute, bandwidth, memory and budgets."""
    if ctx.invoked_subcommand is not None:
        return
    from ..targets.calibration_store import target_calibrations
    from ..targets.render import targets_table
    from ..targets.target import Target, available_targets

    if calibration:
        for name, cal in target_calibrations().items():
            console.print(cal if cal is not None else f"[bold]{name}[/]: no latency calibration (plain roofline); "
                          f"fit one with `edgedeploy targets calibrate {name} --from measurements.csv`")
        return
    console.print(targets_table(Target.load(name) for name in available_targets()))
    console.print("Use --target NAME, or the path of your own YAML with the same fields. "
                  "`edgedeploy targets --calibration` shows how well each latency model predicts real devices.")


@targets_app.command("calibrate")
def calibrate_cmd(
    target: str = typer.Argument(..., help="target name (see `edgedeploy targets`) or a target YAML path"),
    measurements: Path = typer.Option(..., "--from", help="CSV with columns model,input_shape,latency_ms"
                                      "[,source,conditions,date,label,scope] (model: zoo name, "
                                      "package.module:factory or .onnx file)"),
    out: Path | None = typer.Option(None, "--out", help="write the calibration YAML here (default: edgedeploy's "
                                    "calibration folder, which the target then uses)"),
) -> None:
    """Fit TARGET's latency model to your measurements; print the leave-one-out error of every row."""
    from ..targets.calibrate import calibrate_file

    if out is not None:
        output_file(out)
    cal, path = calibrate_file(target, measurements, out)
    console.print(cal)
    console.print(f"calibration written to {path}", soft_wrap=True)
