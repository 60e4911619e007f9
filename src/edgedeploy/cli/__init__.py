"""Command-line interface (typer + rich). Thin: parse, call the public API, print."""
from __future__ import annotations

import sys

from .app import app, console

# Each stage adds its commands in its own module; importing it registers them on `app`.
_COMMAND_MODULES = ("profile_cmd", "toolchain_cmd", "blocks_cmd", "qnn_cmd", "export_cmd", "prune_cmd", "quantize_cmd")


def _register() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(f".{name}", __name__)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; EdgeDeployError prints one line and exits 2 (traceback with --debug)."""
    from ..errors import EdgeDeployError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    _register()
    try:
        app(args=args, prog_name="edgedeploy", standalone_mode=False)
    except EdgeDeployError as exc:
        if debug:
            raise
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except SystemExit as exc:          # typer's own exits (e.g. --help)
        return int(exc.code or 0)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return 2
        if isinstance(exc, click.exceptions.Abort):
            return 1
        raise
    return 0


def run() -> None:
    """Console-script wrapper: exit with main()'s code."""
    sys.exit(main())
