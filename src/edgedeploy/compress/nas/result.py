"""What a search returns: every trial, the Pareto front, the hypervolume after each generation, the chosen
architecture; ``NasResult`` prints the front as a rich table and serializes to JSON."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .config import OBJECTIVES, NasConfig
from .search import GENERATION_KEY, progress, retried_numbers


@dataclass(frozen=True)
class TrialRow:
    """One trial as read back from the study."""

    number: int
    state: str                       # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    key: str | None                  # the architecture's label
    arch: dict[str, Any] | None
    values: dict[str, float]         # the objectives (complete trials)
    metrics: dict[str, float]        # everything measured (costs too, for pruned trials)
    pruned: str | None = None        # the broken constraint (or the pruner's reason)
    duplicate_of: int | None = None
    retry_of: int | None = None      # the failed trial this one re-runs
    retried: bool = False            # this failed trial was queued again
    generation: int | None = None
    seconds: float | None = None
    error: str | None = None         # why a failed trial failed (Optuna's fail_reason)


@dataclass
class NasResult:
    """A search's outcome (read from its study, so it covers every worker's trials)."""

    study: str
    storage: str                     # password redacted
    sampler: str
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    trials: list[TrialRow] = field(default_factory=list)
    pareto: list[int] = field(default_factory=list)            # trial numbers, best first by the first objective
    hypervolume: list[dict[str, float]] = field(default_factory=list)   # generation, trials, hypervolume
    hv_bounds: dict[str, list[float]] = field(default_factory=dict)      # per-objective normalization, ref = 1.1
    counts: dict[str, int] = field(default_factory=dict)
    chosen: int | None = None
    final: dict[str, Any] | None = None     # the chosen arch retrained, exported, profiled and measured
    feasible_combinations: int | None = None
    seconds: float = 0.0
    out: str | None = None

    def trial(self, number: int) -> TrialRow:
        """The trial with that number."""
        return next(t for t in self.trials if t.number == number)

    @property
    def front(self) -> list[TrialRow]:
        """The Pareto-optimal trials."""
        return [self.trial(n) for n in self.pareto]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def table(self) -> Any:
        """The Pareto front as a rich table (the chosen architecture marked)."""
        from rich.table import Table

        hv = f", hypervolume {self.hypervolume[-1]['hypervolume']:.4f}" if self.hypervolume else ""
        t = Table(title=f"Pareto front of study {self.study!r} ({self.sampler}, {self.counts.get('complete', 0)} "
                        f"complete, {self.counts.get('pruned', 0)} pruned{hv})")
        t.add_column("#", justify="right")
        t.add_column("architecture", overflow="fold")
        for o in self.objectives:
            t.add_column(f"{o} ({'max' if OBJECTIVES[o][0] == 'maximize' else 'min'})", justify="right")
        for col in ("params", "MACs"):
            t.add_column(col, justify="right")
        for row in self.front:
            mark = " *" if row.number == self.chosen else ""
            t.add_row(f"{row.number}{mark}", row.key or "-", *(f"{row.values[o]:.4g}" for o in self.objectives),
                      f"{row.metrics.get('params', 0):,.0f}", f"{row.metrics.get('macs', 0):,.0f}")
        return t

    def __rich__(self) -> Any:
        return self.table()


def read_trials(study: Any, config: NasConfig) -> list[TrialRow]:
    """Every trial of the study as a TrialRow."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    rows = []
    for t in trials:
        values = dict(zip(config.objectives, t.values)) if t.values is not None else {}
        rows.append(TrialRow(
            number=t.number, state=t.state.name, key=t.user_attrs.get("key"), arch=t.user_attrs.get("arch"),
            values=values, metrics=dict(t.user_attrs.get("metrics", {})), pruned=t.user_attrs.get("pruned"),
            duplicate_of=t.user_attrs.get("duplicate_of"), retry_of=t.system_attrs.get("failed_trial"),
            retried=t.number in retried, generation=t.system_attrs.get(GENERATION_KEY),
            seconds=t.user_attrs.get("seconds"), error=t.system_attrs.get("fail_reason")))
    return rows


def losses(rows: list[TrialRow], objectives: tuple[str, ...]) -> list[list[float]]:
    """Objective vectors turned into losses (maximized objectives negated)."""
    return [[-r.values[o] if OBJECTIVES[o][0] == "maximize" else r.values[o] for o in objectives] for r in rows]


def pareto_numbers(rows: list[TrialRow], objectives: tuple[str, ...]) -> list[int]:
    """Numbers of the non-dominated complete trials (duplicates of one architecture counted once)."""
    done = [r for r in rows if r.state == "COMPLETE" and r.duplicate_of is None]
    vecs = losses(done, objectives)
    front = [r for r, v in zip(done, vecs)
             if not any(all(a <= b for a, b in zip(w, v)) and w != v for w in vecs)]
    return [r.number for r in sorted(front, key=lambda r: losses([r], objectives)[0])]


# the best value an objective can reach, as a loss: accuracy 100 %, every cost 0 (the proxy has none)
IDEAL = {"accuracy": -100.0, "latency": 0.0, "latency_pred": 0.0, "macs": 0.0, "params": 0.0, "traffic": 0.0,
         "energy": 0.0}


def bounds(rows: list[TrialRow], objectives: tuple[str, ...]) -> tuple[list[float], list[float]]:
    """The hypervolume's normalization per objective, as losses: (ideal, worst complete trial). The ideal is the
    best reachable value (100 % accuracy, zero cost), so a search that finds better points gains volume even
    when one point dominates the others; the proxy, which has no ideal, uses its best observed value."""
    vecs = losses([r for r in rows if r.state == "COMPLETE"], objectives)
    if not vecs:
        return [], []
    cols = list(zip(*vecs))
    return [IDEAL.get(o, min(c)) for o, c in zip(objectives, cols)], [max(c) for c in cols]


def hypervolume(rows: list[TrialRow], objectives: tuple[str, ...], lower: list[float], upper: list[float]) -> float:
    """Hypervolume of the complete trials in ``rows``: losses scaled to [0, 1] by (lower, upper), reference 1.1
    on every axis (Optuna's exact WFG algorithm)."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    done = [r for r in rows if r.state == "COMPLETE"]
    if not done:
        return 0.0
    lo, hi = np.asarray(lower, float), np.asarray(upper, float)
    pts = (np.asarray(losses(done, objectives), float) - lo) / np.where(hi > lo, hi - lo, 1.0)
    pts = np.minimum(pts, 1.1)                           # a point beyond the reference adds nothing
    return float(compute_hypervolume(pts, np.full(len(objectives), 1.1)))


def hypervolume_history(rows: list[TrialRow], objectives: tuple[str, ...], population: int,
                        lower: list[float], upper: list[float]) -> list[dict[str, float]]:
    """Hypervolume of all complete trials up to each generation (NSGA-II's own generations; for the other
    samplers, every ``population`` complete trials in completion order)."""
    done = sorted((r for r in rows if r.state == "COMPLETE"), key=lambda r: r.number)
    gens = [r.generation if r.generation is not None else i // population for i, r in enumerate(done)]
    out = []
    for g in sorted(set(gens)):
        upto = [r for r, rg in zip(done, gens) if rg <= g]
        out.append({"generation": float(g), "trials": float(len(upto)),
                    "hypervolume": hypervolume(upto, objectives, lower, upper)})
    return out


def choose(rows: list[TrialRow], pareto: list[int], objectives: tuple[str, ...], rule: str) -> int | None:
    """The Pareto member to build: ``knee`` (closest to the ideal point, objectives scaled to [0, 1]) or
    ``accuracy`` (most accurate; ties to the lowest of the other objectives)."""
    front = [r for r in rows if r.number in pareto]
    if not front:
        return None
    if rule == "accuracy" and "accuracy" in objectives:
        return max(front, key=lambda r: (r.values["accuracy"], [-v for v in losses([r], objectives)[0]])).number
    vecs = losses(front, objectives)
    lo, hi = [min(c) for c in zip(*vecs)], [max(c) for c in zip(*vecs)]
    dist = [sum(((v - a) / (b - a) if b > a else 0.0) ** 2 for v, a, b in zip(vec, lo, hi)) for vec in vecs]
    return front[dist.index(min(dist))].number


def summarize(study: Any, config: NasConfig, storage: str, seconds: float) -> NasResult:
    """Read the study back into a NasResult (front, hypervolume history, counts, chosen architecture)."""
    rows = read_trials(study, config)
    pareto = pareto_numbers(rows, config.objectives)
    lo, hi = bounds(rows, config.objectives)
    hv = hypervolume_history(rows, config.objectives, config.population, lo, hi) if lo else []
    return NasResult(study=config.study, storage=storage, sampler=config.sampler, objectives=config.objectives,
                     directions=tuple(config.directions), trials=rows, pareto=pareto, hypervolume=hv,
                     hv_bounds={"best": lo, "worst": hi}, counts=progress(study.get_trials(deepcopy=False)),
                     chosen=choose(rows, pareto, config.objectives, config.select), seconds=seconds)
