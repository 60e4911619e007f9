"""``NasConfig`` (what to search, for what, how) and its YAML form; every option is checked when it is built."""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from .predictor import RUNTIMES, STATS
from .space import SearchSpace, load_space

# objective -> (Optuna direction, what it is)
OBJECTIVES: dict[str, tuple[str, str]] = {
    "accuracy": ("maximize", "validation top-1 (%) after a short training on real data"),
    "proxy": ("maximize", "NASWOT zero-cost score of the untrained network (no training)"),
    "latency": ("minimize", "measured latency (ms) on the host runtime, one thread"),
    "latency_pred": ("minimize", "predicted latency (ms) on the target"),
    "macs": ("minimize", "multiply-accumulates per frame"),
    "params": ("minimize", "parameters"),
    "traffic": ("minimize", "memory traffic per frame (bytes)"),
    "energy": ("minimize", "energy per frame (µJ, 45 nm table)"),
}
SAMPLERS = ("nsga2", "tpe", "random")
SELECT = ("knee", "accuracy")
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _positive(value: Any, what: str, integer: bool = False, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{what} must be a positive {'integer' if integer else 'number'}, got {value!r}")


@dataclass(frozen=True)
class Constraints:
    """Hard limits checked BEFORE training; a candidate over any of them is pruned untrained."""

    target: str | None = None          # device the latency and op limits refer to (None: the config's target)
    latency_ms: float | None = None    # predicted latency per frame on the target
    params: int | None = None
    macs: int | None = None
    ops: bool = False                  # every op supported by the target's compiler (check()'s ops verdict)
    unknown_ops: str = "allow"         # an "unknown" ops verdict (compiler not installed): allow or reject

    def __post_init__(self) -> None:
        _positive(self.latency_ms, "constraints.latency_ms")
        _positive(self.params, "constraints.params", integer=True)
        _positive(self.macs, "constraints.macs", integer=True)
        if self.unknown_ops not in ("allow", "reject"):
            raise ConfigError(f"constraints.unknown_ops must be 'allow' or 'reject', got {self.unknown_ops!r}")
        if self.target is not None:
            from ...targets.target import Target

            Target.load(self.target)        # an unknown target fails now, naming the valid ones

    @property
    def active(self) -> bool:
        """True when any limit is set."""
        return any(v is not None for v in (self.latency_ms, self.params, self.macs)) or self.ops


@dataclass(frozen=True)
class NasConfig:
    """A hardware-aware architecture search: the space, the objectives, the constraints and the engine."""

    space: SearchSpace = field(default_factory=SearchSpace)
    objectives: tuple[str, ...] = ("accuracy", "latency")
    constraints: Constraints = field(default_factory=Constraints)
    sampler: str = "nsga2"             # nsga2 | tpe | random
    trials: int = 30                   # finished (complete or pruned) trials of the whole study, all workers
    population: int = 10               # NSGA-II population; also the generation size of the hypervolume history
    data: str = "digits"               # training data spec: dataset name, image folder or .npy (resolved per size)
    epochs: int = 2
    lr: float = 1e-2                   # peak of the one-cycle schedule
    batch_size: int = 32
    train_limit: int | None = None     # training samples used per trial at most
    threads: int = 1                   # torch threads per worker while training (one core per worker)
    runtime: str = "onnxruntime"       # host runtime of the measured latency
    latency_repeats: int = 100
    latency_stat: str = "min"          # min: the least load-sensitive on a shared machine; or median
    target: str = "cpu"                # target of the predicted latency (objective latency_pred)
    calibration: str | None = None     # latency calibration YAML (e.g. from `edgedeploy nas calibrate`) used for
                                       # predictions on its target; None: each target's own (else plain roofline)
    study: str = "nas"
    storage: str | None = None         # None: SQLite file in the output folder; postgresql://... for many workers
    heartbeat_s: int = 10              # a running trial's heartbeat; silent for grace_s -> failed and retried
    grace_s: int | None = None         # default 3 x heartbeat_s
    max_retry: int = 2
    proxy_first: int = 0               # zero-cost first pass: screen this many random archs, seed the best
    final_epochs: int = 8              # retraining of the chosen architecture (0: skip building it)
    select: str = "knee"               # chosen Pareto member: knee (closest to the ideal) or accuracy
    seed: int = 0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "space", load_space(self.space))
        if isinstance(self.constraints, Mapping):
            set_(self, "constraints", _constraints(self.constraints))
        objs = (self.objectives,) if isinstance(self.objectives, str) else tuple(self.objectives)
        set_(self, "objectives", objs)
        if not objs:
            raise ConfigError("objectives is empty; choose from " + ", ".join(OBJECTIVES))
        for o in objs:
            if o not in OBJECTIVES:
                raise ConfigError(f"unknown objective {o!r}; choose from {', '.join(OBJECTIVES)}")
        if len(set(objs)) != len(objs):
            raise ConfigError(f"objectives {list(objs)} lists one twice")
        if "accuracy" in objs and "proxy" in objs:
            raise ConfigError("objectives accuracy and proxy measure the same thing; keep one")
        for name, valid in (("sampler", SAMPLERS), ("runtime", RUNTIMES), ("latency_stat", STATS),
                            ("select", SELECT)):
            if getattr(self, name) not in valid:
                raise ConfigError(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(valid)}")
        for name in ("trials", "population", "epochs", "batch_size", "latency_repeats", "heartbeat_s", "threads"):
            _positive(getattr(self, name), name, integer=True, allow_none=False)
        _positive(self.lr, "lr", allow_none=False)
        _positive(self.train_limit, "train_limit", integer=True)
        _positive(self.grace_s, "grace_s", integer=True)
        for name in ("max_retry", "proxy_first", "final_epochs", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {v!r}")
        if self.population < 2:
            raise ConfigError(f"population must be >= 2 (NSGA-II mates pairs), got {self.population}")
        if self.grace_s is not None and self.grace_s <= self.heartbeat_s:
            raise ConfigError(f"grace_s ({self.grace_s}) must exceed heartbeat_s ({self.heartbeat_s}), or a live "
                              "worker's trial would be failed between two heartbeats")
        if not _STUDY_NAME.match(self.study):
            raise ConfigError(f"study name {self.study!r}: use letters, digits, '.', '_' or '-' (up to 100)")
        if not isinstance(self.data, str) or not self.data:
            raise ConfigError("data must be a dataset name, an image folder or a .npy path (pass arrays to nas() "
                              "as train_data=)")
        from ...targets.target import Target

        Target.load(self.target)
        if self.calibration is not None:
            cal = self.latency_calibration
            if cal.target not in (self.target, self.constraint_target):
                also = f" and {self.constraint_target!r}" if self.constraint_target != self.target else ""
                raise ConfigError(f"calibration {self.calibration} is for target {cal.target!r}, but the search "
                                  f"predicts latency on {self.target!r}{also}; calibrate that target or drop "
                                  "calibration")

    @property
    def latency_calibration(self) -> Any:
        """The calibration file read (None when not given)."""
        if self.calibration is None:
            return None
        from ...targets.calibration import read_calibration

        return read_calibration(self.calibration)

    def calibration_for(self, target: str) -> Any:
        """The calibration to predict latency on ``target`` with (None: the target's own)."""
        cal = self.latency_calibration
        return cal if cal is not None and cal.target == target else None

    @property
    def directions(self) -> list[str]:
        """Optuna directions of the objectives, in order."""
        return [OBJECTIVES[o][0] for o in self.objectives]

    @property
    def constraint_target(self) -> str:
        """The target the constraints refer to."""
        return self.constraints.target or self.target

    @property
    def grace_period(self) -> int:
        """Seconds without a heartbeat after which a running trial is failed (and retried)."""
        return self.grace_s or 3 * self.heartbeat_s

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready dict (``config_from_dict`` reads it back)."""
        return asdict(self)


def _constraints(d: Mapping[str, Any]) -> Constraints:
    valid = {f.name for f in fields(Constraints)}
    unknown = sorted(set(d) - valid)
    if unknown:
        raise ConfigError(f"constraints: unknown key {unknown[0]!r}; valid: {', '.join(sorted(valid))}")
    return Constraints(**d)


def config_from_dict(d: Mapping[str, Any], **overrides: Any) -> NasConfig:
    """A NasConfig from a dict (YAML), with keyword overrides (e.g. storage from the command line)."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"a NAS config is a mapping of options (space, objectives, ...), got {type(d).__name__}")
    valid = {f.name for f in fields(NasConfig)}
    unknown = sorted(set(d) - valid)
    if unknown:
        raise ConfigError(f"NAS config: unknown key {unknown[0]!r}; valid: {', '.join(sorted(valid))}")
    if "space" not in d:
        raise ConfigError("NAS config has no 'space'; describe the search space (stages, resolution, stem ...)")
    base = NasConfig(**{k: v for k, v in d.items() if k != "objectives"},
                     **({"objectives": tuple(d["objectives"])} if "objectives" in d else {}))
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def load_config(path: str | os.PathLike[str], **overrides: Any) -> NasConfig:
    """Read a NAS YAML config (see ``configs/nas/digits.yaml``); ConfigError naming the file on a bad one."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"NAS config {p} does not exist; give the path of a YAML file")
    try:
        d = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    try:
        return config_from_dict(d or {}, **overrides)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
