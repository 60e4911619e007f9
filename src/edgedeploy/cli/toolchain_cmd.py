"""CLI commands: ``toolchain install myriad`` and ``toolchain status`` (external compilers in the cache)."""
from __future__ import annotations

from pathlib import Path

import typer

from .app import app, console

toolchain_app = typer.Typer(help="Install or inspect external toolchains (the offline MyriadX blob compiler).",
                            no_args_is_help=True)
app.add_typer(toolchain_app, name="toolchain")

_KNOWN = ("myriad",)


@toolchain_app.command("install")
def install_cmd(
    name: str = typer.Argument(..., help="toolchain to install: myriad (OpenVINO 2021.4.2 MYRIAD plugin)"),
    force: bool = typer.Option(False, "--force", help="reinstall even if it is already installed"),
    wheel: Path | None = typer.Option(None, "--wheel", help="use this downloaded openvino-2021.4.2 wheel (no PyPI)"),
) -> None:
    """Download and build a toolchain into the cache (~/.cache/edgedeploy, or $EDGEDEPLOY_CACHE)."""
    from ..errors import ConfigError
    from ..export import myriad_toolchain as mt

    if name.lower() not in _KNOWN:
        raise ConfigError(f"unknown toolchain {name!r}; valid choices: {', '.join(_KNOWN)}")
    tc = mt.install_toolchain(force=True, wheel=wheel) if force else (
        mt.installed() or mt.install_toolchain(wheel=wheel))
    console.print(f"[green]MyriadX toolchain ready:[/] {tc.compiler}", highlight=False, soft_wrap=True)


@toolchain_app.command("status")
def status_cmd() -> None:
    """Show which toolchains are installed and which system requirements are present."""
    from rich.table import Table

    from ..export import myriad_toolchain as mt

    st = mt.status()
    table = Table(title=f"toolchain {st['name']}", show_header=False)
    table.add_row("installed", _mark(st["installed"]) + f"  {st['path']}")
    if st["compiler"]:
        table.add_row("compiler", st["compiler"])
    table.add_row("g++", _mark(bool(st["g++"])) + f"  {st['g++'] or 'missing: apt-get install -y g++'}")
    table.add_row("pip", _mark(st["pip"]) + ("" if st["pip"] else "  missing: python -m ensurepip"))
    lib = mt.LIBUSB_PACKAGE
    table.add_row(lib, _mark(st[lib]) + ("" if st[lib] else f"  missing: apt-get install -y {lib}"))
    console.print(table)
    if not st["installed"]:
        console.print("install it with: edgedeploy toolchain install myriad (or on first export_blob)")


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"
