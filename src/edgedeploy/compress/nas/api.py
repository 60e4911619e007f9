"""``nas(config)``: start (or resume) a hardware-aware architecture search and build its chosen architecture;
``nas_worker(study, storage)``: join a running study from any machine.

Everything is checked before the first trial: the config, the storage (a real connection), the data at one
resolution, and that some architecture of the space can meet the constraints. The output folder holds the
embedded study (``study.db``), ``best/`` (the chosen architecture retrained: ``arch.json``, ``weights.pt``,
``model.onnx``) and a run folder layout that ``edgedeploy report`` renders (``run.json``, ``01-nas/``,
``02-profile/`` and ``03-check/`` with their ``result.json``); see ``outputs.py``.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from .config import NasConfig
from .objectives import Evaluator
from .outputs import _now, build_chosen, write_run
from .result import NasResult, summarize
from .search import (
    join_study,
    make_objective,
    open_study,
    quiet_optuna,
    reclaim,
    require_optuna,
    seed_from_proxy,
    study_config,
    work,
)
from .storage import check_url, embedded_url, open_storage, redact
from .train import TaskData, torch_threads


def _storage(config: NasConfig, folder: Path | None) -> tuple[Any, str, bool]:
    """(Optuna storage, its URL, embedded?) for the config."""
    if config.storage is None and folder is not None:
        url, embedded = embedded_url(folder), True
    else:
        url, embedded = config.storage, False
    return open_storage(url, config.heartbeat_s, config.grace_period, config.max_retry), url, embedded


def _bar(total: int, what: str) -> tuple[Any, Any]:
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task(what, total=total)
    return bar, lambda c: bar.update(task, completed=min(c["finished"], total),
                                     description=f"{what}: {c['complete']} complete, {c['pruned']} pruned, "
                                                 f"{c['retried']} retried")


def nas(config: NasConfig, out: str | Path | None = None, train_data: Any = None, eval_data: Any = None) -> NasResult:
    """Run (or resume) the search of ``config`` in this process until the study has ``config.trials`` finished
    trials, then retrain, export, profile and measure the chosen Pareto member into ``out/best``."""
    from ..._io import check_output_folder, output_lock

    if not isinstance(config, NasConfig):
        raise ConfigError(f"nas() takes a NasConfig, got {type(config).__name__}")
    require_optuna()
    if train_data is not None and config.storage is not None and not isinstance(train_data, (str, Path)):
        raise ConfigError("workers on a shared storage read the data by name: pass train_data as a dataset name, "
                          "image folder or .npy path (or set config.data), not in-memory arrays")
    if train_data is not None:                            # the stored config says what the trials trained on
        config = replace(config, data=str(train_data) if isinstance(train_data, (str, Path)) else "<in-memory data>")
    if out is None and config.storage is None:
        raise ConfigError("the embedded study (an SQLite file) needs an output folder: pass out=..., or a storage URL")
    folder = check_output_folder(out) if out is not None else None
    if config.storage is not None:
        check_url(config.storage)                         # an unreachable server fails first, in one line
    data = TaskData(config.data if train_data is None else train_data, eval_data, config.space.in_channels,
                    config.space.num_classes, config.train_limit, config.seed)
    evaluator = Evaluator(config, data)
    data.at(min(config.space.resolution))                 # bad data fails now, before the storage is touched
    feasible = evaluator.probe()
    t0, started = time.perf_counter(), _now()
    with output_lock(folder) if folder is not None else contextlib.nullcontext(), quiet_optuna():
        storage, url, embedded = _storage(config, folder)
        study = open_study(config, storage, seed=config.seed)
        if embedded:
            reclaim(study)                                # a killed or interrupted run of this folder: retried
        if config.proxy_first and not study.get_trials(deepcopy=False):
            seed_from_proxy(study, config, evaluator, config.proxy_first)
        bar, update = _bar(config.trials, f"NAS {config.study}")
        with bar:
            work(study, make_objective(config, evaluator), config.trials, poll_s=config.heartbeat_s, on_trial=update)
        result = summarize(study, config, redact(url), time.perf_counter() - t0)
        result.feasible_combinations = feasible if feasible >= 0 else None
        if folder is not None:
            result.out = str(folder)
            extra: list[tuple[str, Any]] = []
            if result.chosen is not None and config.final_epochs > 0:
                with torch_threads(config.threads):
                    result.final, extra = build_chosen(result, config, data, folder)
            write_run(folder, result, config, started, extra)
    return result


def nas_worker(study: str, storage: str, out: str | Path | None = None) -> NasResult:
    """Join the study ``study`` on ``storage`` (started by ``nas``) and run its trials until its budget is met."""
    if not isinstance(storage, str) or "://" not in storage:
        raise ConfigError(f"a worker needs the storage URL of the study (postgresql://...), got {storage!r}")
    require_optuna()
    folder = None
    if out is not None:
        from ..._io import check_output_folder

        folder = check_output_folder(out)
    t0 = time.perf_counter()
    with quiet_optuna():
        config = study_config(study, storage)
        st = join_study(study, open_storage(storage, config.heartbeat_s, config.grace_period, config.max_retry),
                        config, seed=None)
        evaluator = Evaluator(config)
        evaluator.data.at(min(config.space.resolution))
        bar, update = _bar(config.trials, f"NAS worker {study}")
        with bar:
            work(st, make_objective(config, evaluator), config.trials, poll_s=config.heartbeat_s, on_trial=update)
        result = summarize(st, config, redact(storage), time.perf_counter() - t0)
    if folder is not None:
        from ..._io import output_lock, write_json_atomic

        with output_lock(folder):
            write_json_atomic(folder / "worker.json", result.to_dict())
        result.out = str(folder)
    return result
