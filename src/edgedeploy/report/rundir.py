"""Read a run folder (``run.json`` + ``NN-step/result.json``, as ``edgedeploy run`` writes it) into records."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArtifactError

STATUSES = ("ok", "failed", "skipped", "cached")


@dataclass(frozen=True)
class StepRecord:
    """One step of a run: what ran (``kind``, the user's ``name``), how it ended, and its result data."""

    index: int
    kind: str
    name: str
    folder: Path
    status: str
    seconds: float | None
    error: str | None
    variant: str | None               # the model variant this step produced or measured
    data: dict[str, Any] = field(default_factory=dict)
    artifacts: tuple[str, ...] = ()

    @property
    def has_data(self) -> bool:
        """True when the step left a result to show (failed and skipped steps usually do not)."""
        return bool(self.data)

    def find(self, path: str) -> Path | None:
        """An artifact path as written in the result (absolute, or relative to the step or run folder), if it exists."""
        p = Path(path)
        for cand in ([p] if p.is_absolute() else []) + [self.folder / p, self.folder.parent / p, self.folder / p.name]:
            if cand.is_file():
                return cand
        return None


@dataclass(frozen=True)
class RunRecord:
    """A whole run: the recipe, model, target, host, timing and its steps in order."""

    folder: Path
    model: str
    target: str | None
    host: dict[str, Any]
    versions: dict[str, Any]
    started: str | None
    finished: str | None
    recipe: dict[str, Any]
    steps: tuple[StepRecord, ...]
    interrupted: str | None = None      # when the run was stopped (Ctrl-C) before its last step
    never_ran: tuple[str, ...] = ()     # the steps an interrupted run never reached

    def of_kind(self, kind: str, with_data: bool = True) -> list[StepRecord]:
        """Steps of one kind, in run order (only those with a result unless ``with_data`` is False)."""
        return [s for s in self.steps if s.kind == kind and (s.has_data or not with_data)]

    @property
    def seconds(self) -> float:
        """Sum of the steps' durations (s)."""
        return sum(s.seconds or 0.0 for s in self.steps)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ArtifactError(f"cannot read {path} ({exc.strerror}); check the run folder") from exc
    except ValueError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); the run was interrupted while writing it: "
                            "rerun the recipe with --resume") from exc


def load_run(run_dir: str | os.PathLike[str]) -> RunRecord:
    """Read ``run_dir/run.json`` and every step's ``result.json``; steps without a result keep their status."""
    folder = Path(run_dir)
    meta_path = folder / "run.json"
    if not meta_path.is_file():
        raise ArtifactError(f"{folder} is not a run folder (no run.json); make one with "
                            "`edgedeploy run RECIPE.yaml --out DIR` and pass that DIR")
    meta = _read_json(meta_path)
    if not isinstance(meta, dict) or not isinstance(meta.get("steps", []), list):
        raise ArtifactError(f"{meta_path} is not a run description (expected an object with a 'steps' list)")
    steps = []
    for i, entry in enumerate(meta.get("steps", []), start=1):
        if not isinstance(entry, dict):
            raise ArtifactError(f"{meta_path}: step {i} is {type(entry).__name__}, not an object")
        steps.append(_step(folder, i, entry))
    return RunRecord(folder=folder, model=str(meta.get("model") or "model"), target=meta.get("target"),
                     host=dict(meta.get("host") or {}), versions=dict(meta.get("versions") or {}),
                     started=meta.get("started"), finished=meta.get("finished"),
                     recipe=dict(meta.get("recipe") or {}), steps=tuple(steps),
                     interrupted=meta.get("interrupted"), never_ran=_never_ran(meta, steps))


def _never_ran(meta: dict[str, Any], steps: list[StepRecord]) -> tuple[str, ...]:
    """Planned steps of an interrupted run that have no record (an uninterrupted run has none)."""
    if not meta.get("interrupted"):
        return ()
    done = {s.folder.name for s in steps}
    return tuple(str(d) for d in meta.get("planned") or () if str(d) not in done)


def _step(folder: Path, position: int, entry: dict[str, Any]) -> StepRecord:
    sub = folder / str(entry.get("dir") or "")
    result: dict[str, Any] = {}
    if entry.get("dir") and (sub / "result.json").is_file():
        result = _read_json(sub / "result.json")
        if not isinstance(result, dict):
            raise ArtifactError(f"{sub / 'result.json'} is not a step result (expected an object)")
    dir_kind = str(entry.get("dir") or "").split("-", 1)[-1] or None
    kind = str(result.get("step") or entry.get("step") or dir_kind or entry.get("name") or "step")
    status = str(result.get("status") or entry.get("status") or "ok")
    data = result.get("data")
    return StepRecord(
        index=int(entry.get("index") or position), kind=kind, name=str(result.get("name") or entry.get("name") or kind),
        folder=sub, status=status if status in STATUSES else status.lower(),
        seconds=_float(result.get("seconds", entry.get("seconds"))), error=entry.get("error") or result.get("error"),
        variant=result.get("variant"), data=data if isinstance(data, dict) else {},
        artifacts=tuple(str(a) for a in result.get("artifacts") or ()))


def _float(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None
