"""CLI commands: ``profile``, ``check`` and ``demo`` (the shipped ``headbody`` recipe: case study 1 at small scale);
heavy imports stay inside each command; ``targets`` lives in ``targets_cmd``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .app import app, console, output_file
from .options import INPUT_HELP, MODEL_HELP, model_and_shape, trust_option


def _precision_option(default: str | None) -> Any:
    return typer.Option(default, "--precision", "-p", help="fp32, fp16, bf16, int8 (check also: int16)")


@app.command("profile")
def profile_cmd(
    model: str = typer.Argument(..., help=MODEL_HELP),
    input: str | None = typer.Option(None, "--input", "-i", help=INPUT_HELP),  # noqa: A002
    precision: str | None = _precision_option(None),
    fps: float | None = typer.Option(None, "--fps", help="frames per second, for the bandwidth it needs"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the profile as JSON to this file"),
    top: int | None = typer.Option(None, "--top", min=1, help="show only the N layers with the most traffic"),
    target: str | None = typer.Option(None, "--target", "-t", help="also check against a target (name or YAML)"),
    pretrained: bool = typer.Option(False, "--pretrained", help="zoo models: build the trained variant"),
    trust_pickle: bool = trust_option(),
) -> None:
    """Per-layer params, MACs, activation memory and traffic of MODEL, with totals (precision: fp32, or the target's)."""
    from ..metrics.profile import profile
    from ..metrics.render import profile_renderable

    output_file(json_out)
    tgt = None
    if target is not None:              # fail on a bad target before the profile runs
        from ..targets.target import Target

        tgt = Target.load(target)
        precision = precision or tgt.precisions[0]
    net, shape = model_and_shape(model, input, pretrained, trust_pickle)
    prof = profile(net, shape, precision=precision or "fp32", fps=fps)
    console.print(profile_renderable(prof, top=top, compact=console.width < 130))
    if json_out is not None:
        prof.to_json(json_out)
        console.print(f"profile written to {json_out}")
    if tgt is not None:
        from ..targets.check import check

        _print_report(check(net, tgt, input_shape=shape, precision=precision, fps=fps), json_out=None)


@app.command("check")
def check_cmd(
    model: str = typer.Argument(..., help=MODEL_HELP),
    target: str = typer.Option(..., "--target", "-t", help="target name (see `edgedeploy targets`) or a YAML path"),
    input: str | None = typer.Option(None, "--input", "-i", help=INPUT_HELP),  # noqa: A002
    precision: str | None = _precision_option(None),
    fps: float | None = typer.Option(None, "--fps", help="frame rate to check (default: the target's minimum)"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the report as JSON to this file"),
    pretrained: bool = typer.Option(False, "--pretrained", help="zoo models: build the trained variant"),
    trust_pickle: bool = trust_option(),
) -> None:
    """Check MODEL against a target's precision, value range, ops (its compiler), memory, latency, FPS and
    bandwidth budgets (exit 1 on FAIL; UNKNOWN says what could not be verified)."""
    from ..targets.check import check
    from ..targets.target import Target

    output_file(json_out)
    tgt = Target.load(target)
    net, shape = model_and_shape(model, input, pretrained, trust_pickle)
    report = check(net, tgt, input_shape=shape, precision=precision, fps=fps)
    _print_report(report, json_out)
    if not report.passed:
        raise typer.Exit(1)


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="run folder (default: runs/demo)"),
    fresh: bool = typer.Option(False, "--fresh", help="run every step again (default: reuse unchanged steps)"),
) -> None:
    """Case study 1 at small scale (the shipped recipe ``headbody``, a few minutes on 2 cores): train the
    hardware-aware head/body detector, profile it, check it against myriadx and qualcomm-htp, export ONNX,
    OpenVINO IR (U8 input), the MyriadX blob and a QNN context binary, time and score it, write the report."""
    from ..run.engine import run_recipe

    result = run_recipe("headbody", out, resume=not fresh, echo=lambda line: console.print(line, highlight=False))
    console.print(result)
    if result.report is not None:
        console.print(f"report: [bold]{result.report}[/]", soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)


def _print_report(report: Any, json_out: Path | None) -> None:
    console.print(report)
    if json_out is not None:
        report.to_json(json_out)
        console.print(f"report written to {json_out}")
