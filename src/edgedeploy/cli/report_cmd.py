"""CLI commands: ``report`` (one HTML file from a run folder) and ``view`` (an ONNX graph as SVG)."""
from __future__ import annotations

from pathlib import Path

import typer

from .app import app, console


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="a run folder written by `edgedeploy run` (it holds run.json)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="HTML file to write (default: RUN_DIR/report.html)"),
) -> None:
    """Write one self-contained HTML report of a run: verdict, variants, plots, steps and the exported graph."""
    from .._io import check_output_file
    from ..report.build import overall_verdict, render_report
    from ..report.rundir import load_run

    if out is not None:
        check_output_file(out, "--out")
    run = load_run(run_dir)                      # a folder that is not a run fails here, before any work
    with console.status("writing the report..."):
        path = render_report(run_dir, out)
    status, head, _ = overall_verdict(run)
    console.print(f"[bold]{status}[/] {head}", highlight=False, markup=True, soft_wrap=True)
    console.print(f"report written to {path} ({path.stat().st_size / 1e3:.0f} kB)", soft_wrap=True)


@app.command("view")
def view_cmd(
    model: Path = typer.Argument(..., help="an .onnx file"),
    out: Path = typer.Option(..., "--out", "-o", help="SVG file to write, e.g. graph.svg"),
    color: str = typer.Option("macs", "--color", "-c", help="colour nodes by macs (profiler) or time (measured on "
                                                             "ONNX Runtime, one thread)"),
) -> None:
    """Draw MODEL's graph as a static SVG (what Netron shows, as a file): op boxes, tensor shapes on the edges,
    nodes coloured by MACs or measured time."""
    from .._io import check_output_file, write_bytes_atomic
    from ..errors import ConfigError
    from ..report.graph_svg import COLOR_BY, render_graph_svg

    if color not in COLOR_BY:
        raise ConfigError(f"unknown --color {color!r}; choose one of {', '.join(COLOR_BY)}")
    if out.suffix.lower() != ".svg":
        raise ConfigError(f"--out {out} must end in .svg (the graph is written as SVG)")
    check_output_file(out, "--out")
    with console.status(f"drawing {model.name}..."):
        svg = render_graph_svg(model, color_by=color)
    write_bytes_atomic(out, svg.encode("utf-8"))
    boxes = svg.count('<g class="node">')
    console.print(f"graph of {model.name} ({boxes} boxes, colour: {color}) written to {out}", highlight=False,
                  soft_wrap=True)
