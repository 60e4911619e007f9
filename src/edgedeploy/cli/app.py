"""The typer app object and small helpers shared by every command module."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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
err_console = Console(stderr=True)

# Library messages name API keywords ("pass calibration= ..."); on the command line the user knows options.
_CLI_NAMES = (
    ("calibration=", "--calib"), ("eval_data=", "--calib"), ("train_data=", "--data"),
    ("example_inputs=", "--input"), ("input_shape=", "--input"), ("trust_pickle=True", "--trust-pickle"),
    ("OnnxConfig(exporter=", "--exporter ("), ("OnnxConfig(opset=", "--opset ("),
    ("QuantConfig(keep_float=", "--keep-float ("), ("QuantConfig(ignored=", "--ignore ("),
    ("PruneConfig.ignored", "--ignore"), ("keep_float=", "--keep-float "), ("fps=", "--fps "),
)


def cli_message(message: str) -> str:
    """A library error message with API keywords replaced by the CLI options that set them."""
    for api, flag in _CLI_NAMES:
        message = message.replace(api, flag)
    return re.sub(r"\s+", " ", message).strip()


def output_file(path: Path | None) -> Path | None:
    """Validate an output file option (e.g. --json) before any work: never a device, folder or symlink."""
    if path is None:
        return None
    from .._io import check_output_file

    return check_output_file(path, "--json" if path.suffix == ".json" else "output")


def print_result(result: Any, json_out: Path | None = None) -> None:
    """Print a result dataclass (rich) and write its JSON when asked."""
    console.print(result)
    if json_out is not None:
        from .._io import write_json_atomic

        write_json_atomic(json_out, result.to_dict())
        console.print(f"written to {json_out}")
