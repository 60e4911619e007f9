"""``edgedeploy blocks``: compare a hardware-aware block with its Conv2D baseline; print the tutorial's tables."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from .app import app, console

blocks_app = typer.Typer(help="Hardware-aware blocks: MACs/params vs the Conv2D baseline, the tutorial's tables.",
                         no_args_is_help=True)
app.add_typer(blocks_app, name="blocks")


def _wide() -> Console:
    """A console at least 180 columns wide: the tutorial's layout has nine columns that must not be truncated."""
    return Console(width=max(console.width, 180), highlight=False)


def _parse_size(size: str) -> tuple[int, int]:
    from ..errors import ConfigError

    parts = size.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"--size {size!r} is not HxW; write it like 352x1280")
    return int(parts[0]), int(parts[1])


@blocks_app.command()
def compare(
    block: str = typer.Argument(..., help="s2d, dense, ghost, partial or pixelshuffle"),
    in_ch: int = typer.Option(32, "--in", help="input channels"),
    out_ch: int = typer.Option(64, "--out", help="output channels"),
    size: str = typer.Option("352x1280", "--size", help="input HxW (the tutorial's is 352x1280)"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the table as JSON here"),
) -> None:
    """Print Conv2D+BN+ReLU vs BLOCK (MACs, params; thop counting), with the tutorial's figures when it has them."""
    from .._io import write_json_atomic
    from ..blocks.tables import compare as compare_block

    table = compare_block(block, in_ch, out_ch, _parse_size(size))
    _wide().print(table)
    if json_out is not None:
        write_json_atomic(json_out, table.to_dict())


@blocks_app.command()
def tables(json_out: Path | None = typer.Option(None, "--json", help="also write the tables as JSON here")) -> None:
    """Print the tutorial's four block-vs-Conv2D tables, recomputed, beside its figures with % difference."""
    from .._io import write_json_atomic
    from ..blocks.tables import tutorial_tables

    result = tutorial_tables()
    for table in result:
        _wide().print(table)
    if json_out is not None:
        write_json_atomic(json_out, [t.to_dict() for t in result])
