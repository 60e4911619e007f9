"""Command-line interface (typer + rich). Thin: parse, call the public API, print.

Exit codes: 0 success; 1 a check that ran and failed (``check``'s FAIL verdicts); 2 bad input or a fault,
printed as one line naming the fix (a traceback only with ``--debug``); 130 interrupted (Ctrl-C); 141 the reader of
stdout went away (``| head``), quietly, as a shell reports SIGPIPE.
"""
from __future__ import annotations

import sys

from .app import app, cli_message, err_console

# Each stage adds its commands in its own module; importing it registers them on `app`.
_COMMAND_MODULES = ("profile_cmd", "targets_cmd", "toolchain_cmd", "blocks_cmd", "qnn_cmd", "export_cmd", "prune_cmd",
                    "quantize_cmd", "nas_cmd", "run_cmd", "report_cmd")


def _register() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(f".{name}", __name__)


def _fail(message: str) -> int:
    err_console.print(f"[bold red]error:[/] {cli_message(message)}", highlight=False, soft_wrap=True, markup=True)
    return 2


def _reader_gone() -> int:
    """stdout's reader closed the pipe (e.g. ``| head``): stop quietly with the shell's SIGPIPE status, 141."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error when Python flushes
    except (OSError, ValueError):
        pass
    return 141


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn every failure into one line and an exit code (see module doc)."""
    from typer._click.exceptions import ClickException

    from ..errors import EdgeDeployError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    empty = [a for a, v in zip(args, [*args[1:], None]) if a in ("--out", "-o") and v is not None and not v.strip()]
    if empty or any(a == "--out=" for a in args):      # Path("") would be ".": outputs scattered into the cwd
        return _fail("--out is empty; name an output folder or file, e.g. --out runs/out")
    try:
        _register()
        code = app(args=args, prog_name="edgedeploy", standalone_mode=False)
    except KeyboardInterrupt:
        code = 130
    except EdgeDeployError as exc:
        if debug:
            raise
        return _fail(str(exc))
    except ClickException as exc:          # usage errors: unknown option, missing argument, bad number
        if debug:
            raise
        where = f" (see `{exc.ctx.command_path} --help`)" if getattr(exc, "ctx", None) is not None else ""
        return _fail(f"{exc.format_message()}{where}")
    except BrokenPipeError:
        return _reader_gone()
    except SystemExit as exc:              # sys.exit() from code we imported (user code is guarded in the library)
        if isinstance(exc.__context__, BrokenPipeError):      # rich exits this way when stdout's reader has gone
            return _reader_gone()
        if debug:
            raise
        return _fail(f"the run called sys.exit({exc.code!r}) before finishing; nothing was completed")
    except Exception as exc:  # noqa: BLE001 - never a traceback for the user; --debug shows it
        if debug:
            raise
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        return _fail(f"unexpected {type(exc).__name__}: {text} (rerun with --debug for the traceback and please "
                     "report it)")
    if code == 130:
        err_console.print("[bold red]interrupted[/] (Ctrl-C): unfinished outputs were removed", highlight=False)
        return 130
    return int(code or 0) if isinstance(code, int) else 0


def run() -> None:
    """Console-script wrapper: exit with main()'s code."""
    sys.exit(main())
