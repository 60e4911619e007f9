"""The search on Optuna: one study (NSGA-II, TPE or random sampling, several objectives), workers that share it,
and what is read back from it (Pareto front, hypervolume per generation, counts of retried trials).

A study stores its ``NasConfig`` as a user attribute, so a worker joining with only the study name and the
storage URL scores candidates exactly like the worker that started it. The budget counts finished trials of
the whole study (complete or pruned, or failed for good); a trial whose worker died is retried, not counted.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ...errors import ConfigError, EdgeDeployError, ToolchainError
from .config import NasConfig, config_from_dict
from .objectives import Evaluator
from .space import Arch
from .storage import redact

CONFIG_ATTR = "edgedeploy.nas.config"
WORKER = f"{socket.gethostname()}:{os.getpid()}"          # who runs a trial (a user attribute of each trial)
GENERATION_KEY = "NSGAIISampler:generation"
# options that change what a trial's numbers mean: a study refuses a config that differs in them
_SCORING = ("space", "objectives", "constraints", "data", "epochs", "lr", "batch_size", "train_limit", "runtime",
            "latency_repeats", "latency_stat", "target", "calibration", "seed")


def require_optuna() -> None:
    """ToolchainError in one line when Optuna (the search engine) is not installed."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ToolchainError("architecture search needs Optuna: pip install 'optuna>=4.9' (and psycopg[binary] for "
                             "PostgreSQL workers)") from None


def make_sampler(config: NasConfig, seed: int | None) -> Any:
    """The Optuna sampler named by ``config.sampler`` (``seed`` None: a fresh random seed, for extra workers)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if config.sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=config.population, seed=seed)
        if config.sampler == "tpe":
            return optuna.samplers.TPESampler(n_startup_trials=config.population, multivariate=True, group=True,
                                              seed=seed, constant_liar=True)
        return optuna.samplers.RandomSampler(seed=seed)


def _pruner(config: NasConfig) -> Any:
    """Median pruning on the per-epoch validation accuracy (Optuna prunes single-objective studies only)."""
    import optuna

    if config.objectives == ("accuracy",) and config.epochs > 1:
        return optuna.pruners.MedianPruner(n_startup_trials=config.population, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def open_study(config: NasConfig, storage: Any, seed: int | None) -> Any:
    """Create the study (storing the config) or load it, refusing one started with a different scoring config."""
    import optuna

    study = optuna.create_study(study_name=config.study, storage=storage, directions=config.directions,
                                sampler=make_sampler(config, seed), pruner=_pruner(config), load_if_exists=True)
    stored = study.user_attrs.get(CONFIG_ATTR)
    mine = json.loads(json.dumps(config.to_dict()))
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, mine)
    else:
        differ = [k for k in _SCORING if stored.get(k) != mine.get(k)]
        if differ:
            raise ConfigError(f"study {config.study!r} was started with a different config ({', '.join(differ)} "
                              "differ); resume it with the same config or choose another study name")
        if stored != mine:              # a new budget, sampler or heartbeat: workers that join read it from here
            study.set_user_attr(CONFIG_ATTR, mine)
    return study


def study_config(name: str, url: str) -> NasConfig:
    """The config the study ``name`` on ``url`` was started with (ConfigError when there is no such study)."""
    import optuna

    from .storage import check_url, engine_url

    check_url(url)
    storage = optuna.storages.RDBStorage(engine_url(url))
    try:
        names = optuna.get_all_study_names(storage)
        if name not in names:
            raise ConfigError(f"no study {name!r} in {redact(url)} (studies: {', '.join(names) or 'none'}); start it "
                              "with `edgedeploy nas run CONFIG --storage URL` first")
        stored = optuna.load_study(study_name=name, storage=storage).user_attrs.get(CONFIG_ATTR)
    finally:
        storage.engine.dispose()
    if stored is None:
        raise ConfigError(f"study {name!r} was not started by edgedeploy nas (it has no stored config)")
    return config_from_dict(stored)


def join_study(name: str, storage: Any, config: NasConfig, seed: int | None) -> Any:
    """Load the existing study with the sampler and pruner of its config (for ``edgedeploy nas worker``)."""
    import optuna

    return optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(config, seed),
                             pruner=_pruner(config))


def make_objective(config: NasConfig, evaluator: Evaluator) -> Callable[[Any], Any]:
    """The Optuna objective: suggest an architecture, reuse a finished twin, prune it before training when it
    breaks a constraint, else train and measure it."""
    import optuna
    from optuna.trial import TrialState

    def objective(trial: Any) -> Any:
        arch = config.space.suggest(lambda name, choices: trial.suggest_categorical(name, list(choices)))
        trial.set_user_attr("worker", WORKER)
        trial.set_user_attr("arch", arch.to_dict())
        trial.set_user_attr("key", arch.key)
        twin = next((t for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                     if t.user_attrs.get("key") == arch.key), None)
        if twin is not None:                  # the sampler proposed a finished architecture: same numbers
            trial.set_user_attr("metrics", twin.user_attrs.get("metrics", {}))
            trial.set_user_attr("duplicate_of", twin.number)
            return list(twin.values)

        def on_epoch(epoch: int, accuracy: float) -> None:
            if len(config.objectives) == 1:
                trial.report(accuracy, epoch)
                if trial.should_prune():
                    why = f"validation top-1 {accuracy:.2f}% below the median of earlier trials at epoch {epoch + 1}"
                    trial.set_user_attr("pruned", why)
                    raise optuna.TrialPruned(why)

        try:
            ev = evaluator.evaluate(arch, on_epoch, on_costs=lambda m: trial.set_user_attr("metrics", m))
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)     # a resumed study retries it
            raise
        trial.set_user_attr("metrics", ev.metrics)
        trial.set_user_attr("seconds", ev.seconds)
        if ev.history:
            trial.set_user_attr("history", ev.history)
        if ev.violations:
            trial.set_user_attr("pruned", "; ".join(ev.violations))
            raise optuna.TrialPruned("; ".join(ev.violations))
        return ev.values(config.objectives)

    return objective


def retried_numbers(trials: list[Any]) -> set[int]:
    """Numbers of failed trials that were queued again (Optuna's retry history)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def progress(trials: list[Any]) -> dict[str, int]:
    """Counts: complete, pruned, failed (for good), retried, waiting, running, and ``finished`` (the budget's)."""
    from optuna.trial import TrialState

    retried = retried_numbers(trials)
    c = {"complete": 0, "pruned": 0, "failed": 0, "retried": 0, "waiting": 0, "running": 0}
    for t in trials:
        if t.state == TrialState.COMPLETE:
            c["complete"] += 1
        elif t.state == TrialState.PRUNED:
            c["pruned"] += 1
        elif t.state == TrialState.FAIL:
            c["retried" if t.number in retried else "failed"] += 1
        elif t.state == TrialState.WAITING:
            c["waiting"] += 1
        elif t.state == TrialState.RUNNING:
            c["running"] += 1
    c["finished"] = c["complete"] + c["pruned"] + c["failed"]
    return c


def reclaim(study: Any) -> int:
    """Fail and queue again the trials a killed or interrupted run of THIS folder left behind (embedded storage:
    the folder lock proves nobody else runs them). Returns how many were queued."""
    from optuna.trial import TrialState

    storage = study._storage
    callback = storage.get_heartbeat_stale_trial_callback()
    trials = study.get_trials(deepcopy=False)
    retried, queued = retried_numbers(trials), 0
    for t in trials:
        orphan = t.state == TrialState.RUNNING
        interrupted = t.state == TrialState.FAIL and t.user_attrs.get("interrupted") and t.number not in retried
        if orphan:
            storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        if orphan or interrupted:
            callback(study, storage.get_trial(t._trial_id))
            queued += 1
    return queued


def work(study: Any, objective: Callable[[Any], Any], budget: int, poll_s: float,
         on_trial: Callable[[dict[str, int]], None] | None = None) -> None:
    """Run trials until the study has ``budget`` finished ones, then stand by while other workers' last trials
    run: if one of them dies, its retry (queued by the heartbeat check) is run here."""
    import optuna

    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        c = progress(study.get_trials(deepcopy=False))
        if on_trial is not None:
            on_trial(c)
        if c["waiting"] == 0 and c["finished"] + c["running"] >= budget:
            if c["running"] == 0:
                return
            time.sleep(poll_s)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # a candidate that cannot be exported or run (our errors, torch's RuntimeError) fails alone: recorded
            # with its reason (TrialRow.error), counted, and the search goes on
            study.optimize(objective, n_trials=1, catch=(EdgeDeployError, RuntimeError), gc_after_trial=False)


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's per-trial INFO lines off for the block (the progress bar and the result table say it)."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def seed_from_proxy(study: Any, config: NasConfig, evaluator: Evaluator, n: int) -> int:
    """Zero-cost first pass: score ``n`` random feasible architectures with the NASWOT proxy (no training) and
    queue the best ``population`` of them as the study's first trials. Returns how many were queued."""
    import numpy as np

    from .build import build_model
    from .train import naswot

    rng = np.random.default_rng(config.seed)
    scored: list[tuple[float, Arch]] = []
    seen: set[str] = set()
    for _ in range(n):
        arch = config.space.sample(rng)
        if arch.key in seen:
            continue
        seen.add(arch.key)
        model = build_model(arch, seed=config.seed)
        if evaluator.violations(arch, model, evaluator.costs(arch, model)):
            continue
        x = evaluator.data.at(arch.resolution)[0][: config.batch_size]
        scored.append((naswot(model, x), arch))
    best = sorted(scored, key=lambda s: -s[0])[: config.population]
    for score, arch in best:
        params = arch_params(arch, config)
        study.enqueue_trial(params, user_attrs={"proxy_first": score}, skip_if_exists=True)
    return len(best)


def arch_params(arch: Arch, config: NasConfig) -> dict[str, Any]:
    """The Optuna parameters that make ``config.space.suggest`` return ``arch``."""
    params: dict[str, Any] = {}

    def record(name: str, choices: tuple[Any, ...]) -> Any:
        value = {"resolution": arch.resolution, "stem": arch.stem, "stem_width": arch.stem_width,
                 "act": arch.act}.get(name)
        if value is None:
            i, knob = name[1:].split(".")
            value = getattr(arch.stages[int(i)], knob)
        params[name] = value
        return value

    config.space.suggest(record)
    return params
