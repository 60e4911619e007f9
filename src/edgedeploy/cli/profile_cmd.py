"""CLI commands: ``profile``, ``check`` and ``demo`` (heavy imports stay inside each command); ``targets`` lives in
``targets_cmd``."""
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
    epochs: int = typer.Option(8, "--epochs", min=1, help="training epochs for the digits CNN"),
) -> None:
    """Train a small CNN on scikit-learn's real digits, then profile it and check it against cpu and myriadx."""
    import torch

    from ..metrics.profile import profile
    from ..metrics.render import profile_renderable
    from ..targets.check import check
    from ..zoo.digits import accuracy, digits_cnn, load_digits_data

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # a tiny CNN: one thread is faster than several fighting for cores
    try:
        with console.status(f"training the digits CNN on scikit-learn's digits ({epochs} epochs)..."):
            model = digits_cnn(pretrained=True, epochs=epochs)
            data = load_digits_data()
            acc = accuracy(model, data.x_test, data.y_test)
    finally:
        torch.set_num_threads(threads)
    console.print(f"digits CNN: test top-1 accuracy [bold]{acc:.2f}%[/] on {len(data.y_test)} held-out real digits")
    shape = (1, 1, 16, 16)
    console.print(profile_renderable(profile(model, shape, precision="fp32", fps=30), compact=console.width < 130))
    for name in ("cpu", "myriadx"):
        console.print(check(model, name, input_shape=shape))


def _print_report(report: Any, json_out: Path | None) -> None:
    console.print(report)
    if json_out is not None:
        report.to_json(json_out)
        console.print(f"report written to {json_out}")
