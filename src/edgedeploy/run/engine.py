"""``run_recipe``: execute a validated recipe into ``DIR/NN-step/`` folders, resumable, with a summary.

Each step writes ``result.json`` (status, seconds, the library result's ``to_dict()``, artifacts, and a hash
of its options and of every step before it). ``resume=True`` skips a step whose hash is unchanged and whose
result is complete, restoring its model (``model.pt``) and artifacts, so a crash after ten minutes of
training does not cost them again. A failed step keeps what earlier steps made and says which step failed.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import json_safe, output_lock, package_versions, write_json_atomic
from ..errors import ConfigError, EdgeDeployError
from .recipe import Recipe, Step, load_recipe
from .steps import RUNNERS, Outcome, State, transform_of


@dataclass
class StepRecord:
    """How one step went."""

    index: int
    kind: str
    dir: str
    status: str                   # ok | cached | failed | skipped
    seconds: float
    headline: str = ""
    error: str | None = None


@dataclass
class RunResult:
    """The run folder, every step's record and the report (when a report step ran)."""

    run_dir: Path
    steps: list[StepRecord] = field(default_factory=list)
    report: Path | None = None

    @property
    def ok(self) -> bool:
        """True when no step failed."""
        return all(s.status in ("ok", "cached") for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"run_dir": str(self.run_dir), "ok": self.ok, "report": str(self.report) if self.report else None,
                "steps": [vars(s) for s in self.steps]}

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"run {self.run_dir}", title_justify="left")
        for col in ("#", "step", "status", "seconds", "result"):
            t.add_column(col, justify="right" if col in ("#", "seconds") else "left", overflow="fold")
        colours = {"ok": "green", "cached": "cyan", "failed": "bold red", "skipped": "dim"}
        for s in self.steps:
            t.add_row(str(s.index), s.kind, f"[{colours[s.status]}]{s.status}[/]", f"{s.seconds:.1f}",
                      s.error or s.headline)
        return t


def run_recipe(recipe: Recipe | str | os.PathLike[str], out: str | os.PathLike[str] | None = None,
               resume: bool = False, echo: Any = None) -> RunResult:
    """Run every step of ``recipe`` into ``out`` (default ``runs/<name>``); ``echo(line)`` reports progress."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    run_dir = Path(out) if out is not None else Path("runs") / recipe.name
    if (run_dir / "run.json").exists() and not resume:
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to reuse its unchanged steps, or choose "
                          "another --out")
    echo = echo or (lambda line: None)
    import torch

    threads = torch.get_num_threads()
    if recipe.threads is not None:
        torch.set_num_threads(recipe.threads)
    try:
        return _run(recipe, run_dir, resume, echo)
    finally:
        torch.set_num_threads(threads)


def _run(recipe: Recipe, run_dir: Path, resume: bool, echo: Any) -> RunResult:
    with output_lock(run_dir):
        state = _initial_state(recipe, run_dir)
        result = RunResult(run_dir)
        meta = _meta(recipe)
        chain = _hash({"model": recipe.model, "input": recipe.input, "data": recipe.data,
                       "pretrained": recipe.pretrained, "target": recipe.target,
                       **({"variant": recipe.variant} if recipe.variant != "baseline" else {})})
        meta["planned"] = [step.dirname for step in recipe.steps]
        try:
            _run_steps(recipe, state, run_dir, resume, echo, result, meta, chain)
        except KeyboardInterrupt:            # the record says so: a report of this folder must not read as complete
            meta["interrupted"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            write_json_atomic(run_dir / "run.json", meta)
            raise
        meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json_atomic(run_dir / "run.json", meta)
    return result


def _run_steps(recipe: Recipe, state: State, run_dir: Path, resume: bool, echo: Any, result: RunResult,
               meta: dict[str, Any], chain: str) -> None:
    """Every step in order (after a failure the rest are skipped); run.json is rewritten after each."""
    failed = False
    for step in recipe.steps:
        chain = _hash({"prev": chain, "kind": step.kind, "options": step.options})
        if failed:
            result.steps.append(StepRecord(step.index, step.kind, step.dirname, "skipped", 0.0))
            continue
        record = _run_step(step, state, run_dir, chain, resume, echo)
        result.steps.append(record)
        failed = record.status == "failed"
        if step.kind == "report" and record.status == "ok":
            result.report = run_dir / step.dirname / "report.html"
        meta["steps"] = [vars(s) for s in result.steps]
        write_json_atomic(run_dir / "run.json", meta)


def _initial_state(recipe: Recipe, run_dir: Path) -> State:
    from ..data import resolve
    from ..modelref import load_model

    model = load_model(recipe.model, pretrained=recipe.pretrained)
    data = resolve(recipe.data, recipe.input, "train") if recipe.data is not None else None
    return State(recipe=recipe, run_dir=run_dir, model=model, data=data, variant=recipe.variant,
                 baseline=model if recipe.pretrained else None)


def _meta(recipe: Recipe) -> dict[str, Any]:
    from ..metrics.hostinfo import host_info

    return {"recipe": json_safe(recipe.to_dict()), "source": recipe.source, "model": recipe.model,
            "target": recipe.target, "host": host_info().to_dict(),
            "versions": package_versions("onnx", "onnxruntime", "openvino", "nncf", "torch-pruning"),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "finished": None, "steps": []}


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(json_safe(obj), sort_keys=True, default=str).encode()).hexdigest()


def _run_step(step: Step, state: State, run_dir: Path, chain: str, resume: bool, echo: Any) -> StepRecord:
    folder = run_dir / step.dirname
    previous = _previous(folder, chain) if resume else None
    if previous is not None:
        _restore(step, state, folder, previous)
        echo(f"[cyan]cached[/] {step.dirname} (unchanged since the last run)")
        return StepRecord(step.index, step.kind, step.dirname, "cached", 0.0, previous.get("headline", ""))
    echo(f"[bold]step {step.index}[/] {step.kind} ...")
    start = time.perf_counter()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        outcome = RUNNERS[step.kind](step, state, folder)
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            folder.rmdir()                  # the interrupted step's folder, when it holds nothing yet
        raise
    except EdgeDeployError as exc:
        seconds = time.perf_counter() - start
        _write(folder, step, chain, "failed", seconds, Outcome({}), str(exc))
        echo(f"[bold red]failed[/] {step.dirname}: {exc}")
        return StepRecord(step.index, step.kind, step.dirname, "failed", seconds, error=str(exc))
    seconds = time.perf_counter() - start
    if outcome.saves_model:
        from ..modelfile import save_model_file

        save_model_file(state.model, folder / "model.pt", state.recipe.model, state.transforms)
        outcome.artifacts.append("model.pt")
    _write(folder, step, chain, "ok", seconds, outcome, None)
    echo(f"[green]done[/] {step.dirname} in {seconds:.1f} s: {outcome.headline}")
    return StepRecord(step.index, step.kind, step.dirname, "ok", seconds, outcome.headline)


def _write(folder: Path, step: Step, chain: str, status: str, seconds: float, outcome: Outcome,
           error: str | None) -> None:
    write_json_atomic(folder / "result.json", {
        "step": step.kind, "name": step.dirname, "index": step.index, "status": status, "seconds": seconds,
        "hash": chain, "options": step.options, "variant": outcome.variant, "headline": outcome.headline,
        "artifacts": outcome.artifacts, "error": error, "data": outcome.data})


def _previous(folder: Path, chain: str) -> dict[str, Any] | None:
    """The step's last result when it finished with the same inputs and its artifacts are still there."""
    try:
        previous = json.loads((folder / "result.json").read_text())
    except (OSError, ValueError):
        return None
    if previous.get("status") != "ok" or previous.get("hash") != chain:
        return None
    if not all((folder / a).exists() for a in previous.get("artifacts", [])):
        return None
    return previous


def _restore(step: Step, state: State, folder: Path, previous: dict[str, Any]) -> None:
    """Put back what a cached step changed: the model it produced, the artifacts it added."""
    if step.kind in ("swap", "reparameterize", "mod"):
        state.transforms.append(transform_of(step, state))
    if "model.pt" in previous.get("artifacts", []) and step.kind != "export":
        from ..modelref import load_model

        state.model = load_model(str(folder / "model.pt"))
        if step.kind == "train":
            state.baseline = state.model
        if step.kind == "nas":                       # the searched architecture replaces the source model
            state.transforms = [transform_of(step, state)]
    if previous.get("variant") and step.kind in ("swap", "reparameterize", "prune", "distill", "mod", "nas"):
        state.variant = previous["variant"]
    if step.kind == "quantize":
        state.artifacts += [(previous["variant"], folder / a) for a in previous["artifacts"]]
    if step.kind == "export":
        state.artifacts += [(previous.get("variant") or state.variant, folder / a) for a in previous["artifacts"]
                            if a.endswith((".onnx", ".xml")) and not a.endswith("_ctx.onnx")]
