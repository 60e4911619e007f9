"""Where calibrations live: the user's refits in edgedeploy's cache (host targets keyed by CPU model) and the one
shipped beside each target YAML; which one a target uses."""
from __future__ import annotations

import os
import re
from pathlib import Path

from .calibration import Calibration, read_calibration
from .target import Target


def cache_dir() -> Path:
    """Where users' calibrations go: $EDGEDEPLOY_CACHE/calibrations (else ~/.cache/edgedeploy/calibrations)."""
    from .._io import cache_root

    return cache_root() / "calibrations"


def host_key(cpu_model: str) -> str:
    """A file-name-safe key for one CPU model."""
    return re.sub(r"[^a-z0-9]+", "-", cpu_model.lower()).strip("-") or "unknown-cpu"


def user_calibration_path(target: Target) -> Path:
    """Where ``targets calibrate`` writes by default (host targets: one file per CPU model)."""
    if target.extras.get("cpu_model"):
        return cache_dir() / target.name / f"{host_key(str(target.extras['cpu_model']))}.yaml"
    return cache_dir() / f"{target.name}.yaml"


def target_calibration(target: Target) -> Calibration | None:
    """The calibration ``target`` uses: the user's refit if there is one (for host targets only one made on this
    CPU), else the one shipped with the target (its ``calibration`` field), else None (plain roofline)."""
    user = user_calibration_path(target)
    if user.is_file():
        cal = read_calibration(user)
        host = target.extras.get("cpu_model")
        if cal.target == target.name and (host is None or cal.host == host):
            return cal
    shipped = target.extras.get("calibration")
    return read_calibration(shipped) if shipped else None


def target_calibrations() -> dict[str, Calibration | None]:
    """Every shipped target's calibration as ``target_calibration`` finds it (None: plain roofline)."""
    from .target import available_targets

    return {name: target_calibration(Target.load(name)) for name in available_targets()}


def save_calibration(cal: Calibration, target: Target, out: str | os.PathLike[str] | None = None) -> Path:
    """Write ``cal`` to ``out``, or where ``target`` will find it (``user_calibration_path``); return the path."""
    path = Path(out) if out is not None else user_calibration_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    cal.to_yaml(path)
    return path
