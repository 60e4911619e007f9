"""CLI command ``run``: execute a YAML recipe (the whole flow) into a run folder, with a summary and the report."""
from __future__ import annotations

from pathlib import Path

import typer

from .app import app, console


@app.command("run")
def run_cmd(
    recipe: str = typer.Argument(..., help="a YAML recipe file, or the name of a shipped one (digits, headbody...)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="run folder (default: runs/<recipe name>)"),
    resume: bool = typer.Option(False, "--resume", help="skip steps whose inputs and options are unchanged"),
) -> None:
    """Run RECIPE's steps (train, profile, check, prune, distill, quantize, export, bench, evaluate, report)."""
    from ..run.engine import run_recipe
    from ..run.recipe import load_recipe

    parsed = load_recipe(recipe)              # every option validated before the first step runs
    result = run_recipe(parsed, out, resume=resume, echo=lambda line: console.print(line, highlight=False))
    console.print(result)
    if result.report is not None:
        console.print(f"report: {result.report}")
    if not result.ok:
        failed = next(s for s in result.steps if s.status == "failed")
        from ..errors import EdgeDeployError

        raise EdgeDeployError(f"step {failed.index} ({failed.kind}) failed: {failed.error}; earlier steps are kept "
                              f"in {result.run_dir} (rerun with --resume after fixing it)")
