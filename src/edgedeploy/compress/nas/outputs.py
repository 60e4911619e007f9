"""What a finished search leaves in its output folder: the chosen architecture built like any model (retrained,
exported with the parity gate, profiled, timed, checked against the target) and a run folder for the report.

Layout: ``best/`` (``arch.json``, ``weights.pt``, ``model.onnx`` + ``manifest.json``), ``run.json`` and one folder
per step with its ``result.json`` (``01-nas``, ``02-profile``, ``03-check``), as ``edgedeploy run`` writes them.
"""
from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from .config import NasConfig
from .result import NasResult
from .space import Arch
from .train import TaskData, top1, train


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def build_chosen(result: NasResult, config: NasConfig, data: TaskData,
                 folder: Path) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """Retrain the chosen architecture for ``final_epochs``, export it (parity-checked ONNX) into ``folder/best``,
    profile it, time it on the runtime and check it against the constraint target. Returns the summary and the
    (step kind, result) pairs of the profile and the check."""
    import torch

    from ..._io import ensure_dir, write_bytes_atomic, write_json_atomic
    from ...blocks.reparam import deploy_form
    from ...metrics.profile import profile
    from ...targets.check import check
    from .build import build_model
    from .predictor import export_candidate, time_onnx

    row = result.trial(result.chosen)                 # type: ignore[arg-type]
    arch = Arch.from_dict(row.arch)                   # type: ignore[arg-type]
    split = data.at(arch.resolution)
    model = build_model(arch, seed=config.seed)
    history = train(model, split, config.final_epochs, config.lr, config.batch_size, config.seed)
    best = ensure_dir(folder / "best")
    onnx = export_candidate(model, arch.input_shape, best, name="model")
    deployed, _ = deploy_form(model.eval())
    prof = profile(deployed, arch.input_shape)
    timing = time_onnx(onnx, arch.input_shape, config.runtime, config.latency_repeats, stat=config.latency_stat)
    report = check(deployed, config.constraint_target, input_shape=arch.input_shape)
    write_json_atomic(best / "arch.json", arch.to_dict())
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    write_bytes_atomic(best / "weights.pt", buf.getvalue())
    final = {"trial": row.number, "arch": arch.key, "epochs": config.final_epochs,
             "accuracy": top1(model, *split[2:]), "history": history, "onnx": str(onnx), "runtime": config.runtime,
             "latency_ms": timing["ms"], "latency_min_ms": timing["min_ms"], "latency_median_ms": timing["median_ms"],
             "macs": prof.macs, "params": prof.params, "traffic_bytes": prof.traffic_bytes,
             "energy_uj": prof.energy.total_uj, "check_target": report.target, "check_status": report.status,
             "check_latency_ms": report.latency_ms}
    return final, [("profile", prof), ("check", report)]


def load_chosen(folder: str | Path) -> Any:
    """The chosen architecture of a finished search (``OUT/best``), rebuilt and loaded with its weights."""
    import json

    import torch

    from .build import build_model

    p = Path(folder)
    if not (p / "arch.json").is_file() or not (p / "weights.pt").is_file():
        raise ConfigError(f"{p} holds no chosen architecture (arch.json + weights.pt); point at OUT/best of a search")
    model = build_model(Arch.from_dict(json.loads((p / "arch.json").read_text())))
    model.load_state_dict(torch.load(p / "weights.pt", map_location="cpu", weights_only=True))
    return model.eval()


def write_run(folder: Path, result: NasResult, config: NasConfig, started: str,
              extra: list[tuple[str, Any]]) -> None:
    """``run.json`` and the steps' ``result.json`` files, so ``edgedeploy report OUT`` renders the search."""
    from ..._io import package_versions, write_json_atomic
    from ...metrics.hostinfo import host_info

    steps = [("nas", {**result.to_dict(), "config": config.to_dict()}, result.seconds)]
    steps += [(kind, obj.to_dict(), None) for kind, obj in extra]
    entries = []
    for i, (kind, data, seconds) in enumerate(steps, 1):
        sub = f"{i:02d}-{kind}"
        name = f"nas {config.study}" if kind == "nas" else f"{kind} (chosen architecture)"
        write_json_atomic(folder / sub / "result.json", {"step": kind, "name": name, "status": "ok",
                                                         "seconds": seconds, "variant": "nas-chosen", "data": data})
        entries.append({"index": i, "dir": sub, "step": kind, "name": name, "status": "ok", "seconds": seconds})
    write_json_atomic(folder / "run.json", {
        "model": f"NAS study {config.study}", "target": config.constraint_target, "host": host_info().to_dict(),
        "versions": package_versions("torch", "optuna", "onnxruntime", "openvino"), "started": started,
        "finished": _now(), "recipe": {"nas": config.to_dict()}, "steps": entries})
