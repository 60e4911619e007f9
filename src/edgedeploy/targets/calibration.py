"""A target's latency calibration: the latency model's structure, its fitted coefficients, the measurements
behind them (each with its source, conditions and date) and the leave-one-out error that sets the band.

Shipped calibrations live beside the target YAML (``profiles/myriadx_calibration.yaml``, named by the target's
``calibration:`` field). A user's refit (``edgedeploy targets calibrate``) goes to the calibration folder of
edgedeploy's cache (``$EDGEDEPLOY_CACHE`` or ``~/.cache/edgedeploy``, then ``calibrations/``) and wins over the
shipped one; host targets (``cpu``) are only ever calibrated per host: their file is keyed by the CPU model and
ignored on any other CPU.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import CalibrationError
from ..metrics.types import Profile

SCOPES = ("end-to-end", "layer")     # a whole inference as the target defines it, or one layer's device time
_COEFF_EXTRA = ("per_layer_ms", "fixed_ms", "transfer", "spill")


@dataclass(frozen=True)
class Measurement:
    """One measured (or published) latency: a row of measurements.csv or of a calibration file."""

    model: str                          # MODEL reference (zoo name, package.module:factory, .onnx path) or a label
    input_shape: tuple[int, ...]
    latency_ms: float
    source: str = ""                    # address, or "measured on <host> <date>"
    conditions: str = ""
    date: str = ""
    label: str = ""                     # display name (defaults to the model reference)
    scope: str = "end-to-end"           # "layer": one layer's device time, without transfer or per-inference cost
    fps: float | None = None            # throughput published with it (e.g. with 2 NN threads in flight)
    profile: Profile | None = field(default=None, repr=False, compare=False)     # pre-made profile (skips MODEL)
    outputs: tuple[tuple[int, ...], ...] | None = field(default=None, repr=False, compare=False)
    dilated: frozenset[str] = field(default=frozenset(), repr=False, compare=False)   # with ``profile``

    def __post_init__(self) -> None:
        if not isinstance(self.latency_ms, (int, float)) or isinstance(self.latency_ms, bool) \
                or not math.isfinite(self.latency_ms) or self.latency_ms <= 0:
            raise CalibrationError(f"measurement {self.name}: latency_ms must be a positive number, "
                                   f"got {self.latency_ms!r}")
        if self.fps is not None and (isinstance(self.fps, bool) or not isinstance(self.fps, (int, float))
                                     or not math.isfinite(self.fps) or self.fps <= 0):
            raise CalibrationError(f"measurement {self.name}: fps must be a positive number, got {self.fps!r}")
        if self.scope not in SCOPES:
            raise CalibrationError(f"measurement {self.name}: scope must be one of {', '.join(SCOPES)}, "
                                   f"got {self.scope!r}")

    @property
    def name(self) -> str:
        """The label, or the model reference."""
        return self.label or self.model

    def to_dict(self) -> dict[str, Any]:
        """The CSV/YAML fields (no profile)."""
        return {"model": self.model, "label": self.label, "input_shape": "x".join(map(str, self.input_shape)),
                "latency_ms": self.latency_ms, "scope": self.scope, "source": self.source,
                "conditions": self.conditions, "date": self.date, **({"fps": self.fps} if self.fps else {})}


@dataclass(frozen=True)
class LooRow:
    """Leave-one-out: the model fitted without this row predicts it."""

    model: str
    input_shape: tuple[int, ...]
    measured_ms: float
    predicted_ms: float

    @property
    def error(self) -> float:
        """(predicted - measured) / measured."""
        return (self.predicted_ms - self.measured_ms) / self.measured_ms

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready dict with the error in percent."""
        return {"model": self.model, "input_shape": "x".join(map(str, self.input_shape)),
                "measured_ms": round(self.measured_ms, 4), "predicted_ms": round(self.predicted_ms, 4),
                "error_pct": round(100 * self.error, 1)}


@dataclass(frozen=True)
class Calibration:
    """Fitted latency model of one target (see ``targets/latency.py`` for the formula)."""

    target: str
    precision: str
    groups: Mapping[str, tuple[str, ...]]         # coefficient name -> op classes it scales
    fused: frozenset[str]                         # op classes folded into their producer (free)
    coefficients: Mapping[str, float]             # per group, plus per_layer_ms, fixed_ms, transfer
    band: float                                   # relative half-width of the expected error (max of the two)
    measurements: tuple[Measurement, ...] = ()
    loo: tuple[LooRow, ...] = ()
    conditions: str = ""
    fitted: str = ""
    link_mb_s: float | None = None                # host <-> device link (None: no transfer, e.g. a CPU)
    io_bytes: tuple[float, float] = (1.0, 2.0)    # bytes per input / output element on the link
    shaves: int | None = None                     # SHAVEs the measured blobs were compiled for
    shave_groups: tuple[str, ...] = ()            # groups whose time scales with 1 / shaves
    compute_groups: tuple[str, ...] = ()          # groups timed by compute alone (MAC-bound), not the roofline
    onchip_bytes: float | None = None             # on-chip activation memory (MyriadX CMX); None: no spill term
    host: str | None = None                       # CPU model of a host calibration
    ridge: float = 0.0                            # regularization the fit used
    source: str = ""
    band_low: float | None = None                 # truth >= ms x (1 - band_low) (default: band)
    band_high: float | None = None                # truth <= ms x (1 + band_high) (default: band)
    # throughput = k x 1000 / latency, k over the rows that publish both: (lowest, median, highest); None: k = 1
    # (one frame at a time). With several inference threads in flight a device delivers more frames than that.
    throughput: tuple[float, float, float] | None = None
    channel_block: int | None = None              # SIMD channel block of a host CPU (see latency.features)
    per_layer_groups: bool = False                # a per-layer cost per group (per_layer_ms.GROUP), not one

    @property
    def bounds(self) -> tuple[float, float]:
        """(band_low, band_high): the expected range is ms x (1 - low) .. ms x (1 + high)."""
        return (self.band if self.band_low is None else self.band_low,
                self.band if self.band_high is None else self.band_high)

    def class_factors(self, shaves: int | None = None) -> dict[str, float]:
        """Factor of every op class (the roofline multiplier); SHAVE groups rescaled to ``shaves``."""
        out: dict[str, float] = {}
        for group, classes in self.groups.items():
            k = self.coefficients.get(group, 0.0)
            if shaves is not None and self.shaves and group in self.shave_groups:
                k *= self.shaves / shaves
            out.update(dict.fromkeys(classes, k))
        return _inherit(out)

    def group_of(self) -> dict[str, str]:
        """The coefficient group of every op class (classes no group names take their parent's, see
        ``units.CLASS_PARENT``)."""
        return _inherit({c: g for g, classes in self.groups.items() for c in classes})

    def class_layer_ms(self) -> dict[str, float]:
        """Fixed cost (ms) of one executed layer of every op class: ``per_layer_ms``, or with ``per_layer_groups``
        its group's ``per_layer_ms.GROUP``."""
        base = self.coefficients.get("per_layer_ms", 0.0)
        if not self.per_layer_groups:
            return dict.fromkeys(self.group_of(), base)
        return {c: self.coefficients.get(f"per_layer_ms.{g}", base) for c, g in self.group_of().items()}

    @property
    def compute_classes(self) -> frozenset[str]:
        """Op classes of the compute-bound groups."""
        return frozenset(c for c, g in self.group_of().items() if g in self.compute_groups)

    def transfer_ms(self, io_bytes: float) -> float:
        """Host <-> device time for ``io_bytes`` at the link rate times the fitted transfer factor."""
        if not self.link_mb_s:
            return 0.0
        return self.coefficients.get("transfer", 1.0) * io_bytes / (self.link_mb_s * 1e3)

    def leave_one_out(self) -> list[LooRow]:
        """Leave-one-out rows (model, measured, predicted, error) stored with the fit."""
        return list(self.loo)

    @property
    def within(self) -> dict[str, float]:
        """Share of leave-one-out rows within 15/20/30/35% of the measurement."""
        errs = [abs(r.error) for r in self.loo]
        return {f"{p}%": (sum(e <= p / 100 for e in errs) / len(errs) if errs else float("nan"))
                for p in (15, 20, 30, 35)}

    def to_dict(self) -> dict[str, Any]:
        """The calibration file's fields (JSON/YAML-ready)."""
        model: dict[str, Any] = {"groups": {k: list(v) for k, v in self.groups.items()},
                                 "fused": sorted(self.fused), "io_bytes": list(self.io_bytes)}
        if self.link_mb_s:
            model["link_mb_s"] = self.link_mb_s
        if self.shaves:
            model["shaves"], model["shave_groups"] = self.shaves, list(self.shave_groups)
        if self.onchip_bytes:
            model["onchip_bytes"] = self.onchip_bytes
        if self.compute_groups:
            model["compute_groups"] = list(self.compute_groups)
        if self.channel_block:
            model["channel_block"] = self.channel_block
        if self.per_layer_groups:
            model["per_layer_groups"] = True
        out = {"target": self.target, "precision": self.precision, "fitted": self.fitted,
               "conditions": self.conditions, "model": model, "ridge": self.ridge,
               "coefficients": {k: round(float(v), 6) for k, v in self.coefficients.items()},
               "band": round(self.band, 4), "band_low": round(self.bounds[0], 4),
               "band_high": round(self.bounds[1], 4),
               "leave_one_out": [r.to_dict() for r in self.loo],
               "measurements": [m.to_dict() for m in self.measurements]}
        if self.throughput:
            out["throughput"] = {"low": self.throughput[0], "median": self.throughput[1], "high": self.throughput[2]}
        if self.host:
            out["host"] = self.host
        return out

    def to_yaml(self, path: str | os.PathLike[str] | None = None) -> str:
        """YAML text; also written atomically to ``path`` when given."""
        import yaml

        text = (f"# Latency calibration of target {self.target!r}, written by edgedeploy.targets.calibrate.\n"
                "# Every measurement names its source, conditions and date; refit with\n"
                f"# `edgedeploy targets calibrate {self.target} --from measurements.csv`.\n"
                + yaml.safe_dump(self.to_dict(), sort_keys=False, width=120))
        if path is not None:
            from .._io import write_bytes_atomic

            write_bytes_atomic(path, text.encode())
        return text

    def __rich__(self) -> Any:
        from .render import calibration_table

        return calibration_table(self)


# ------------------------------------------------------------------------------------------- reading files


def read_calibration(path: str | os.PathLike[str]) -> Calibration:
    """Read and validate a calibration YAML file (errors name the file and the field)."""
    path = Path(path)
    st = path.stat() if path.is_file() else None
    return _read_cached(str(path), st.st_mtime_ns if st else -1)


@lru_cache(maxsize=32)
def _read_cached(path_text: str, mtime: int) -> Calibration:
    import yaml

    path = Path(path_text)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CalibrationError(f"cannot read calibration file {path}: {exc.strerror}; check the path") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CalibrationError(f"calibration file {path} is not valid YAML{where}; fix the syntax") from exc
    return parse_calibration(data, path)


def parse_calibration(data: Any, path: str | os.PathLike[str]) -> Calibration:
    """A Calibration from the mapping of a calibration file (errors name the file and the field)."""
    from .units import CLASS_PARENT, OP_CLASSES, PRECISION_BITS

    def bad(key: str, why: str) -> CalibrationError:
        return CalibrationError(f"calibration file {path}: field {key!r} {why}")

    if not isinstance(data, dict):
        raise CalibrationError(f"calibration file {path} must be a mapping with target, precision, model, "
                               "coefficients, band and measurements")
    for key in ("target", "precision", "model", "coefficients", "band"):
        if key not in data:
            raise bad(key, "is missing")

    def number(key: str, value: Any, low: float = 0.0) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
            raise bad(key, f"must be a number >= {low:g}, got {value!r}")
        return float(value)

    if data["precision"] not in PRECISION_BITS:
        raise bad("precision", f"must be one of {', '.join(PRECISION_BITS)}, got {data['precision']!r}")
    model = data["model"]
    if not isinstance(model, dict) or not isinstance(model.get("groups"), dict) or not model["groups"]:
        raise bad("model.groups", "must map coefficient names to lists of op classes")
    groups: dict[str, tuple[str, ...]] = {}
    for g, classes in model["groups"].items():
        if not isinstance(classes, list) or not classes or any(c not in OP_CLASSES for c in classes):
            raise bad(f"model.groups.{g}", f"must be a list of op classes ({', '.join(OP_CLASSES)}), got {classes!r}")
        groups[str(g)] = tuple(classes)
    fused = model.get("fused", [])
    if not isinstance(fused, list) or any(c not in OP_CLASSES for c in fused):
        raise bad("model.fused", f"must be a list of op classes ({', '.join(OP_CLASSES)}), got {fused!r}")
    covered = {c for classes in groups.values() for c in classes} | set(fused) | {"reshape"}
    covered |= {c for c, parent in CLASS_PARENT.items() if parent in covered}
    missing = [c for c in OP_CLASSES if c not in covered]
    if missing:
        raise bad("model.groups", f"leaves op class(es) {', '.join(missing)} in no group and not fused: they would "
                                  "cost nothing; add them to a group (or to fused)")
    coeffs = data["coefficients"]
    if not isinstance(coeffs, dict):
        raise bad("coefficients", f"must map names to numbers, got {coeffs!r}")
    unknown = sorted(set(coeffs) - set(groups) - set(_COEFF_EXTRA) - {f"per_layer_ms.{g}" for g in groups})
    if unknown:
        raise bad(f"coefficients.{unknown[0]}", f"is neither a model group ({', '.join(groups)}) nor one of "
                                                f"{', '.join(_COEFF_EXTRA)}")
    io = model.get("io_bytes", [1, 2])
    if not isinstance(io, list) or len(io) != 2:
        raise bad("model.io_bytes", f"must be [bytes per input element, bytes per output element], got {io!r}")
    link = model.get("link_mb_s")
    shaves = model.get("shaves")
    if shaves is not None and (isinstance(shaves, bool) or not isinstance(shaves, int) or shaves < 1):
        raise bad("model.shaves", f"must be a positive int, got {shaves!r}")
    block = model.get("channel_block")
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 2):
        raise bad("model.channel_block", f"must be an int >= 2 (a CPU's SIMD channel block), got {block!r}")
    rows = data.get("measurements") or []
    if not isinstance(rows, list):
        raise bad("measurements", "must be a list of rows")
    measurements = tuple(_measurement(r, f"measurements[{i}]", bad) for i, r in enumerate(rows))
    loo = []
    for i, r in enumerate(data.get("leave_one_out") or []):
        if not isinstance(r, dict) or not {"model", "measured_ms", "predicted_ms"} <= set(r):
            raise bad(f"leave_one_out[{i}]", "needs model, measured_ms and predicted_ms")
        loo.append(LooRow(str(r["model"]), _shape(r.get("input_shape", ""), f"leave_one_out[{i}]", bad, True),
                          number(f"leave_one_out[{i}].measured_ms", r["measured_ms"], 1e-12),
                          number(f"leave_one_out[{i}].predicted_ms", r["predicted_ms"])))
    return Calibration(
        target=str(data["target"]), precision=data["precision"], groups=groups, fused=frozenset(fused),
        coefficients={k: number(f"coefficients.{k}", v) for k, v in coeffs.items()},
        band=number("band", data["band"]), measurements=measurements, loo=tuple(loo),
        throughput=_throughput(data.get("throughput"), bad),
        band_low=None if data.get("band_low") is None else number("band_low", data["band_low"]),
        band_high=None if data.get("band_high") is None else number("band_high", data["band_high"]),
        conditions=str(data.get("conditions", "")), fitted=str(data.get("fitted", "")),
        link_mb_s=None if link is None else number("model.link_mb_s", link, 1e-9),
        io_bytes=(number("model.io_bytes[0]", io[0]), number("model.io_bytes[1]", io[1])),
        shaves=shaves, shave_groups=_group_list(model, "shave_groups", groups, bad), host=data.get("host"),
        compute_groups=_group_list(model, "compute_groups", groups, bad),
        onchip_bytes=None if model.get("onchip_bytes") is None else number("model.onchip_bytes",
                                                                             model["onchip_bytes"], 1.0),
        ridge=number("ridge", data.get("ridge", 0.0)), source=str(path), channel_block=block,
        per_layer_groups=bool(model.get("per_layer_groups", False)))


def _inherit(by_class: dict[str, Any]) -> dict[str, Any]:
    """``by_class`` plus the classes it lacks whose parent (``units.CLASS_PARENT``) it has, with the parent's value."""
    from .units import CLASS_PARENT

    return {**{c: by_class[p] for c, p in CLASS_PARENT.items() if c not in by_class and p in by_class}, **by_class}


def _throughput(value: Any, bad: Any) -> tuple[float, float, float] | None:
    if value is None:
        return None
    ks = [value.get(k) for k in ("low", "median", "high")] if isinstance(value, dict) else []
    if len(ks) != 3 or not all(isinstance(k, (int, float)) and not isinstance(k, bool) and 0 < k for k in ks) \
            or not ks[0] <= ks[1] <= ks[2]:
        raise bad("throughput", f"must be {{low, median, high}} positive factors in that order, got {value!r}")
    return (float(ks[0]), float(ks[1]), float(ks[2]))


def _group_list(model: dict[str, Any], key: str, groups: dict[str, tuple[str, ...]], bad: Any) -> tuple[str, ...]:
    value = model.get(key) or []
    if not isinstance(value, list) or any(g not in groups for g in value):
        raise bad(f"model.{key}", f"must list model groups ({', '.join(groups)}), got {value!r}")
    return tuple(value)


def _shape(text: Any, where: str, bad: Any, allow_empty: bool = False) -> tuple[int, ...]:
    if allow_empty and text in ("", None):
        return ()
    parts = str(text).lower().replace(" ", "").split("x")
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise bad(f"{where}.input_shape", f"must be NxCxHxW positive integers like 1x3x224x224, got {text!r}")
    return tuple(int(p) for p in parts)


def _measurement(r: Any, where: str, bad: Any) -> Measurement:
    if not isinstance(r, dict) or not {"model", "input_shape", "latency_ms"} <= set(r):
        raise bad(where, "needs model, input_shape and latency_ms")
    for key in ("source", "date"):
        if not str(r.get(key, "")).strip():
            raise bad(f"{where}.{key}", "is empty: every measurement names its source and date")
    try:
        return Measurement(str(r["model"]), _shape(r["input_shape"], where, bad), r["latency_ms"],
                           str(r.get("source", "")), str(r.get("conditions", "")), str(r.get("date", "")),
                           str(r.get("label", "")), str(r.get("scope", "end-to-end")), r.get("fps"))
    except CalibrationError as exc:
        raise bad(where, str(exc).split(": ", 1)[-1]) from None
