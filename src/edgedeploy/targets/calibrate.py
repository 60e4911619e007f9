"""``calibrate``: fit a target's latency model to measured latencies, with an honest leave-one-out error.

The fit is a non-negative least squares on relative errors (each row divided by its measurement, so a 5 ms
model counts as much as a 250 ms one), ridge-regularized toward a one-factor fit (every op class at the same
efficiency, the link at its nominal rate, no fixed costs): few published rows cannot pin many coefficients, and
the prior keeps unpinned ones physical. The ridge strength is chosen by leave-one-out on the rows given; the
reported leave-one-out error is nested (each held-out row's strength is chosen without it), so it is the error
a new model should expect, and the band spans the widest under- and over-prediction among the end-to-end rows.
"""
from __future__ import annotations

import csv
import datetime
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CalibrationError, ConfigError
from .calibration import Calibration, LooRow, Measurement
from .calibration_store import save_calibration, target_calibration
from .latency import OP_CLASSES, Features, Profiled, features, profile_model
from .target import Target
from .units import PRECISION_BITS

#: Structure used when neither the config nor the target's shipped calibration gives one (the one the cpu target's
#: leave-one-out on 32 architectures favoured: depthwise convolutions timed by their MACs, not the roofline).
DEFAULT_GROUPS: dict[str, tuple[str, ...]] = {
    "conv": ("conv", "conv_s2", "conv_stem", "dilated"), "grouped": ("grouped",), "conv1x1": ("conv1x1", "matmul"),
    "depthwise": ("depthwise",), "deconv": ("deconv",), "act": ("act", "leaky"),
    "data": ("eltwise", "pool", "resize", "concat", "permute", "softmax", "other")}
DEFAULT_COMPUTE_GROUPS = ("depthwise",)
DEFAULT_FUSED = frozenset({"bn", "relu"})
RIDGE_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
CSV_COLUMNS = ("model", "input_shape", "latency_ms")


@dataclass(frozen=True)
class CalibrateConfig:
    """How to fit: the model's structure (coefficient groups of op classes, classes folded away, link), the
    ridge strength (None: chosen by leave-one-out from ``RIDGE_GRID``) and the conditions to record. Fields left
    None come from the target's current calibration, else the defaults above."""

    groups: dict[str, tuple[str, ...]] | None = None
    fused: frozenset[str] | None = None
    ridge: float | None = None
    link_mb_s: float | None = None
    io_bytes: tuple[float, float] | None = None
    onchip_bytes: float | None = None      # fit a spill cost for layers overflowing this on-chip memory
    compute_groups: tuple[str, ...] | None = None   # groups timed by compute alone (MAC-bound)
    shaves: int | None = None              # SHAVEs the measured blobs were compiled for (MyriadX)
    shave_groups: tuple[str, ...] | None = None     # groups run on SHAVEs (their time scales with 1 / shaves)
    per_layer: bool = True                 # fit a fixed cost per executed layer
    per_layer_groups: bool | None = None   # ... one per group instead of one for all (host runtimes)
    channel_block: int | None = None       # SIMD channel block of a host CPU (latency.features; 0: none)
    fixed: bool = True                     # fit a fixed cost per inference (end-to-end rows)
    conditions: str | None = None
    precision: str | None = None
    host: str | None = None                # CPU model, for host targets (default: this host's)

    def __post_init__(self) -> None:
        if self.ridge is not None and (not isinstance(self.ridge, (int, float)) or self.ridge < 0):
            raise ConfigError(f"CalibrateConfig.ridge must be >= 0 or None, got {self.ridge!r}")
        if self.precision is not None and self.precision not in PRECISION_BITS:
            raise ConfigError(f"CalibrateConfig.precision must be one of {', '.join(PRECISION_BITS)}")
        if self.channel_block is not None and (isinstance(self.channel_block, bool) or not isinstance(
                self.channel_block, int) or self.channel_block == 1 or self.channel_block < 0):
            raise ConfigError(f"CalibrateConfig.channel_block must be 0 (none) or an int >= 2, got {self.channel_block!r}")
        if self.link_mb_s is not None and self.link_mb_s <= 0:
            raise ConfigError(f"CalibrateConfig.link_mb_s must be > 0, got {self.link_mb_s!r}")
        for name, classes in (self.groups or {}).items():
            bad = [c for c in classes if c not in OP_CLASSES]
            if bad:
                raise ConfigError(f"CalibrateConfig.groups[{name!r}] has unknown op class {bad[0]!r}; valid: "
                                  f"{', '.join(OP_CLASSES)}")
        for key in ("compute_groups", "shave_groups"):
            unknown = [g for g in getattr(self, key) or () if self.groups is not None and g not in self.groups]
            if unknown:
                raise ConfigError(f"CalibrateConfig.{key} names {unknown[0]!r}, which is not one of the groups")


@dataclass
class _Design:
    names: list[str]
    x: np.ndarray                 # rows x coefficients (ms per unit coefficient)
    y: np.ndarray                 # measured ms
    prior: np.ndarray
    feats: list[Features] = field(default_factory=list)


def calibrate(target: Target | str | os.PathLike[str], measurements: Any,
              config: CalibrateConfig | None = None) -> Calibration:
    """Fit ``target``'s latency model to ``measurements`` (a list of Measurement, or a CSV path with columns
    model,input_shape,latency_ms[,source,conditions,date,label,scope,fps]); returns the Calibration with its
    leave-one-out rows and band (``.to_yaml(path)`` to keep it)."""
    tgt = target if isinstance(target, Target) else Target.load(target)
    rows = read_measurements(measurements) if isinstance(measurements, (str, Path)) else list(measurements)
    if not all(isinstance(m, Measurement) for m in rows):
        raise ConfigError("calibrate() takes Measurement rows or the path of a measurements CSV")
    cfg = config or CalibrateConfig()
    base = _base(tgt, cfg)
    if len(rows) < 3:
        raise CalibrationError(f"calibrating {tgt.name} needs at least 3 measurements, got {len(rows)}")
    design = _design(tgt, base, rows, cfg.per_layer, cfg.fixed)
    ridge = cfg.ridge if cfg.ridge is not None else _choose_ridge(design, range(len(rows)))
    theta = _fit(design, ridge, range(len(rows)))
    loo = []
    for i in range(len(rows)):
        keep = [j for j in range(len(rows)) if j != i]
        lam = cfg.ridge if cfg.ridge is not None else _choose_ridge(design, keep)
        pred = float(design.x[i] @ _fit(design, lam, keep))
        loo.append(LooRow(rows[i].name, rows[i].input_shape, rows[i].latency_ms, pred))
    low, high = _band(loo, rows)
    if not base.conditions:             # say what the rows were measured under when nothing else does
        seen = list(dict.fromkeys(m.conditions for m in rows if m.conditions))
        base = replace(base, conditions="; ".join(seen[:2]) + (f" (+{len(seen) - 2} more)" if len(seen) > 2 else ""))
    ks = sorted(m.fps * m.latency_ms / 1e3 for m in rows if m.fps and m.scope == "end-to-end")
    throughput = (round(ks[0], 4), round(ks[len(ks) // 2], 4), round(ks[-1], 4)) if len(ks) >= 3 else None
    return replace(base, coefficients=dict(zip(design.names, map(float, theta))), band=max(low, high),
                   band_low=low, band_high=high, throughput=throughput,
                   measurements=tuple(replace(m, profile=None, outputs=None, dilated=frozenset()) for m in rows),
                   loo=tuple(loo),
                   fitted=datetime.date.today().isoformat(), ridge=float(ridge))


def calibrate_file(target: Target | str | os.PathLike[str], measurements: str | os.PathLike[str],
                   out: str | os.PathLike[str] | None = None) -> tuple[Calibration, Path]:
    """``calibrate`` a target from a measurements CSV and save the result (to ``out``, or where the target will
    use it); returns the calibration and the file written."""
    tgt = target if isinstance(target, Target) else Target.load(target)
    cal = calibrate(tgt, Path(measurements))
    return cal, save_calibration(cal, tgt, out)


def _band(loo: list[LooRow], rows: list[Measurement]) -> tuple[float, float]:
    """The widest leave-one-out misses, relative to the prediction, rounded up to 1%: (under, over). An estimate
    is of a whole inference, so end-to-end rows set it when there are any."""
    end = [r for r, m in zip(loo, rows) if m.scope == "end-to-end"] or loo
    ratios = [r.measured_ms / r.predicted_ms if r.predicted_ms > 0 else math.inf for r in end]
    high = max(max(ratios) - 1, 0.0)
    low = max(1 - min(ratios), 0.0)
    return math.ceil(100 * min(low, 0.99)) / 100, (math.ceil(100 * high) / 100 if math.isfinite(high) else 9.99)


def predict(cal: Calibration, rows: list[Measurement], target: Target | str) -> list[float]:
    """What ``cal`` predicts for each measurement's model (same features as the fit)."""
    tgt = target if isinstance(target, Target) else Target.load(target)
    design = _design(tgt, cal, rows)
    return [float(v) for v in design.x @ np.array([cal.coefficients.get(n, 0.0) for n in design.names])]


def read_measurements(path: str | os.PathLike[str]) -> list[Measurement]:
    """Rows of a measurements CSV (one bad row: CalibrationError naming the file, line and field)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CalibrationError(f"cannot read measurements file {path}: {exc.strerror}; check the path") from exc
    reader = csv.DictReader(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise CalibrationError(f"measurements file {path}: missing column(s) {', '.join(missing)}; the header "
                               "must have model,input_shape,latency_ms[,source,conditions,date,label,scope,fps]")
    rows, lines = [], [i + 1 for i, line in enumerate(text.splitlines()) if not line.lstrip().startswith("#")]
    for n, rec in enumerate(reader):
        line = lines[n + 1] if n + 1 < len(lines) else "?"
        where = f"measurements file {path}, line {line}"
        if None in rec or any(v is None for v in rec.values()):
            raise CalibrationError(f"{where}: expected {len(reader.fieldnames or [])} fields; quote values that "
                                   "contain commas")
        if not rec["model"].strip():
            raise CalibrationError(f"{where}: 'model' is empty; give a MODEL reference (zoo name, "
                                   "package.module:factory or .onnx file)")
        try:
            shape = tuple(int(p) for p in rec["input_shape"].lower().replace(" ", "").split("x"))
            if not shape or min(shape) < 1:
                raise ValueError
        except ValueError:
            raise CalibrationError(f"{where}: input_shape {rec['input_shape']!r} is not like 1x3x224x224") from None
        try:
            ms = float(rec["latency_ms"])
        except ValueError:
            raise CalibrationError(f"{where}: latency_ms {rec['latency_ms']!r} is not a number of ms") from None
        try:
            fps = float(rec["fps"]) if (rec.get("fps") or "").strip() else None
        except ValueError:
            raise CalibrationError(f"{where}: fps {rec['fps']!r} is not a number of frames per second") from None
        try:
            rows.append(Measurement(rec["model"].strip(), shape, ms, rec.get("source") or f"{path}",
                                    rec.get("conditions") or "", rec.get("date") or "", rec.get("label") or "",
                                    (rec.get("scope") or "end-to-end").strip(), fps))
        except CalibrationError as exc:
            raise CalibrationError(f"{where}: {str(exc).split(': ', 1)[-1]}") from None
    if not rows:
        raise CalibrationError(f"measurements file {path} has no rows under its header")
    return rows


# ------------------------------------------------------------------------------------------- internals


def _base(tgt: Target, cfg: CalibrateConfig) -> Calibration:
    """The structure to fit: the config's fields, else the target's current calibration's, else the defaults."""
    current = target_calibration(tgt)
    host = cfg.host or tgt.extras.get("cpu_model")
    return Calibration(
        target=tgt.name, precision=cfg.precision or (current.precision if current else tgt.precisions[0]),
        groups=dict(cfg.groups or (current.groups if current else DEFAULT_GROUPS)),
        fused=frozenset(cfg.fused if cfg.fused is not None else (current.fused if current else DEFAULT_FUSED)),
        coefficients={}, band=0.0,
        conditions=cfg.conditions if cfg.conditions is not None else (current.conditions if current else ""),
        link_mb_s=cfg.link_mb_s if cfg.link_mb_s is not None else (current.link_mb_s if current else None),
        io_bytes=cfg.io_bytes or (current.io_bytes if current else (1.0, 2.0)),
        shaves=cfg.shaves if cfg.shaves is not None else (current.shaves if current else None),
        shave_groups=tuple(cfg.shave_groups if cfg.shave_groups is not None else
                           (current.shave_groups if current else ())),
        compute_groups=tuple(cfg.compute_groups if cfg.compute_groups is not None else
                             (current.compute_groups if current else
                              DEFAULT_COMPUTE_GROUPS if cfg.groups is None else ())),
        onchip_bytes=cfg.onchip_bytes if cfg.onchip_bytes is not None else (current.onchip_bytes if current else None),
        host=str(host) if host else None, ridge=cfg.ridge if cfg.ridge is not None else 0.0,
        channel_block=(cfg.channel_block or None) if cfg.channel_block is not None else
        (current.channel_block if current else None),
        per_layer_groups=cfg.per_layer_groups if cfg.per_layer_groups is not None else
        (current.per_layer_groups if current else False))


_PROFILES: dict[tuple[str, tuple[int, ...], str], Profiled] = {}


def measurement_profile(m: Measurement, precision: str) -> Profiled:
    """The profile, outputs and dilated layers of a measurement's model at its input shape, cached per process."""
    if m.profile is not None:
        return Profiled(m.profile, list(m.outputs) if m.outputs else None, m.dilated)
    key = (m.model, m.input_shape, precision)
    if key not in _PROFILES:
        from ..modelref import load_model

        model = load_model(m.model)
        _PROFILES[key] = profile_model(model, m.input_shape, precision)
    return _PROFILES[key]


def _design(tgt: Target, base: Calibration, rows: list[Measurement], per_layer: bool = True,
            fixed: bool = True) -> _Design:
    """Rows x coefficients: what each coefficient multiplies for each measurement, and the prior."""
    prec = base.precision if base.precision in tgt.peak_ops_per_s else tgt.precisions[0]
    split = per_layer and base.per_layer_groups
    extra = {**{f"per_layer_ms.{g}": (split, 0.0) for g in base.groups},
             "per_layer_ms": (per_layer and not split, 0.0), "spill": (bool(base.onchip_bytes), 0.0),
             "transfer": (bool(base.link_mb_s), 1.0), "fixed_ms": (fixed, 0.0)}
    names = list(base.groups) + [k for k, (on, _) in extra.items() if on]
    group_of = base.group_of()                        # op class -> its group (split classes: their parent's)
    x, feats = [], []
    todo = sum(m.profile is None and (m.model, m.input_shape, base.precision) not in _PROFILES for m in rows)
    if todo > 2:                                      # profiling many models takes a while: show it
        from rich.progress import track

        rows_iter: Any = track(rows, description=f"profiling {todo} models", transient=True)
    else:
        rows_iter = rows
    for m in rows_iter:
        prof, outs, dilated = measurement_profile(m, base.precision)
        f = features(prof, tgt, prec, base.fused, outs, base.io_bytes, base.onchip_bytes, dilated,
                     base.channel_block)
        feats.append(f)
        end = m.scope == "end-to-end"
        executed = [cls for _, cls, _ in f.rows if cls not in base.fused and cls != "reshape"]
        values = {**{f"per_layer_ms.{g}": float(sum(group_of.get(c) == g for c in executed)) for g in base.groups},
                  "per_layer_ms": float(f.layers), "spill": f.spill_ms, "fixed_ms": 1.0 if end else 0.0,
                  "transfer": f.io_bytes / (base.link_mb_s * 1e3) if end and base.link_mb_s else 0.0}
        x.append([sum((f.compute_ms if g in base.compute_groups else f.roofline_ms)[c]
                      for c, cg in group_of.items() if cg == g) for g in base.groups] + [values[k] for k in names[len(base.groups):]])
    xa, y = np.array(x, dtype=float), np.array([m.latency_ms for m in rows], dtype=float)
    groups = len(base.groups)
    scale = float(np.median(y / np.maximum(xa[:, :groups].sum(1), 1e-12)))      # one-factor fit: the prior
    prior = np.array([scale] * groups + [extra[k][1] for k in names[groups:]])
    return _Design(names, xa, y, prior, feats)


def _fit(d: _Design, ridge: float, idx: Any) -> np.ndarray:
    """Non-negative, ridge-to-prior least squares on relative errors over rows ``idx``."""
    from scipy.optimize import nnls

    idx = list(idx)
    a = d.x[idx] / d.y[idx, None]
    b = np.ones(len(idx))
    active = np.abs(a).sum(0) > 0                       # coefficients no row exercises keep their prior
    scale = np.sqrt((a ** 2).mean(0)) + 1e-12
    reg = math.sqrt(ridge) * np.diag(scale)
    theta, _ = nnls(np.vstack([a, reg]), np.concatenate([b, reg @ d.prior]), maxiter=2000)
    theta[~active] = d.prior[~active]
    return theta


def _choose_ridge(d: _Design, idx: Any) -> float:
    """The ridge strength of ``RIDGE_GRID`` with the smallest leave-one-out mean squared relative error."""
    idx = list(idx)
    best, best_err = RIDGE_GRID[0], math.inf
    for lam in RIDGE_GRID:
        errs = []
        for i in idx:
            keep = [j for j in idx if j != i]
            errs.append((float(d.x[i] @ _fit(d, lam, keep)) / d.y[i] - 1) ** 2)
        err = float(np.mean(errs))
        if err < best_err - 1e-12:
            best, best_err = lam, err
    return best
