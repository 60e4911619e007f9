"""The typer app object and small helpers shared by every command module."""
from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="edgedeploy",
    help="Measure, compress, export and verify PyTorch models for edge devices. Add --debug for tracebacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
