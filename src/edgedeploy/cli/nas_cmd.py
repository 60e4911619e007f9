"""CLI commands: ``nas run CONFIG``, ``nas worker --study NAME --storage URL`` and ``nas calibrate --runtime RT``."""
from __future__ import annotations

from pathlib import Path

import typer

from .app import app, console

nas_app = typer.Typer(help="Hardware-aware neural architecture search on Optuna (an SQLite file, or PostgreSQL "
                           "for many workers).", no_args_is_help=True)
app.add_typer(nas_app, name="nas")

_STORAGE_HELP = "postgresql://user:password@host:port/db shared by every worker (default: study.db in --out)"


@nas_app.command("run")
def run_cmd(
    config: Path = typer.Argument(..., help="NAS config YAML (space, objectives, constraints; see configs/nas/)"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder: study.db, result.json, best/, report.html"),
    storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
    study: str | None = typer.Option(None, "--study", help="study name (overrides the config's)"),
    trials: int | None = typer.Option(None, "--trials", help="finished trials of the whole study (all workers)"),
    sampler: str | None = typer.Option(None, "--sampler", help="nsga2, tpe or random"),
    report: bool = typer.Option(True, "--report/--no-report", help="write OUT/report.html with the Pareto front"),
) -> None:
    """Start (or resume) a search and run its trials here; then build the chosen architecture into OUT/best."""
    from .._io import check_output_folder
    from ..compress.nas import load_config, nas

    check_output_folder(out)
    cfg = load_config(config, storage=storage, study=study, trials=trials, sampler=sampler)
    result = nas(cfg, out=out)
    console.print(result.table())
    _counts(result)
    if result.final:
        f = result.final
        console.print(f"chosen: trial {f['trial']} [bold]{f['arch']}[/]: {f['accuracy']:.2f}% top-1 after "
                      f"{f['epochs']} epochs, {f['latency_ms']:.4f} ms on {f['runtime']}, {f['macs']:,} MACs, "
                      f"{f['params']:,} params; check on {f['check_target']}: {f['check_status']}",
                      highlight=False, soft_wrap=True)
    if report:
        # report.build imports report/nas_section.py, which registers the "nas" section
        from ..report.build import render_report

        console.print(f"report written to {render_report(out)}", soft_wrap=True)
    console.print(f"written to {out}", soft_wrap=True)


@nas_app.command("worker")
def worker_cmd(
    study: str = typer.Option(..., "--study", help="name of the study to join"),
    storage: str = typer.Option(..., "--storage", help="the study's storage URL (postgresql://...)"),
    out: Path | None = typer.Option(None, "--out", "-o", help="folder for worker.json (the study as this worker "
                                                              "saw it at the end)"),
) -> None:
    """Join a running study from any machine and run its trials until its budget is met."""
    from ..compress.nas import nas_worker

    result = nas_worker(study, storage, out=out)
    console.print(result.table())
    _counts(result)


@nas_app.command("calibrate")
def calibrate_cmd(
    runtime: str = typer.Option("onnxruntime", "--runtime", "-r", help="onnxruntime or openvino (CPU)"),
    config: Path | None = typer.Option(None, "--config", help="NAS config whose space is sampled (default: the "
                                                               "built-in digits space)"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for measurements.csv and predictor.json"),
    archs: int = typer.Option(60, "--archs", help="sampled architectures measured to fit the predictor"),
    held_out: int = typer.Option(50, "--held-out", help="further architectures the predictor is judged on"),
    repeats: int = typer.Option(100, "--repeats", help="timed runs per architecture"),
    seed: int = typer.Option(0, "--seed"),
    install: bool = typer.Option(False, "--install", help="make the fit this host's cpu calibration (used by "
                                                          "latency_pred and `edgedeploy targets` on target cpu)"),
) -> None:
    """Measure sampled architectures on this machine's runtime, fit the cpu latency model to them and judge it on
    held-out ones (share within ±10%, Kendall τ), beside the plain roofline."""
    from .._io import check_output_folder
    from ..compress.nas import (
        PredictorConfig,
        SearchSpace,
        calibrate_predictor,
        load_config,
    )

    cfg = PredictorConfig(runtime=runtime, archs=archs, held_out=held_out, repeats=repeats, seed=seed)
    check_output_folder(out)
    space = load_config(config).space if config is not None else SearchSpace()
    report = calibrate_predictor(space, cfg, out=out, install=install)
    console.print(report)
    for what, path in report.files.items():
        console.print(f"{what}: {path}", soft_wrap=True, highlight=False)


def _counts(result: object) -> None:
    c = getattr(result, "counts", {})
    console.print(f"study {getattr(result, 'study', '')}: {c.get('complete', 0)} complete, {c.get('pruned', 0)} "
                  f"pruned, {c.get('failed', 0)} failed, {c.get('retried', 0)} retried "
                  f"(worker lost), {getattr(result, 'seconds', 0.0):.1f} s", highlight=False, soft_wrap=True)
