"""Latency of a candidate: measured on a host runtime (ONNX Runtime / OpenVINO CPU) or predicted for a target.

Measured: the deploy form (re-parameterizable blocks fused) exported by ``export_onnx`` and timed with
``runtime.benchmark`` on one thread. Predicted: the target's latency model (``targets.latency.estimate_latency``:
per-layer roofline scaled per op class plus overheads, with the target's calibration or the one given; plain
roofline without one). ``calibrate_predictor`` measures sampled architectures of a search space on this machine,
fits the ``cpu`` target's latency model to them (``targets.calibrate.calibrate``) and judges it on held-out
architectures: share predicted within +-10 % and Kendall tau, beside the uncalibrated roofline.
"""
from __future__ import annotations

import contextlib
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from .space import Arch, SearchSpace

RUNTIMES = ("onnxruntime", "openvino")
STATS = ("min", "median")


def export_candidate(model: Any, input_shape: tuple[int, ...], folder: str | Path, name: str = "candidate") -> Path:
    """The deploy form of ``model`` (re-parameterizable blocks fused) exported by ``export_onnx`` (parity-checked)."""
    import torch

    from ...blocks.reparam import deploy_form
    from ...export.onnx import OnnxConfig, export_onnx

    deployed, _ = deploy_form(model.eval())
    x = torch.rand(input_shape, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # the TorchScript exporter's deprecation notice, once per candidate
        return export_onnx(deployed, (x,), OnnxConfig(exporter="torchscript", opset=17), out=folder, name=name).path


def time_onnx(path: str | Path, input_shape: tuple[int, ...], runtime: str = "onnxruntime", repeats: int = 100,
              warmup: int = 10, stat: str = "min") -> dict[str, float]:
    """Time an ONNX file on ``runtime`` with one thread: ``{"ms" (the ``stat``), "min_ms", "median_ms"}``."""
    import numpy as np

    from ...runtime import benchmark, load

    if runtime not in RUNTIMES or stat not in STATS:
        raise ConfigError(f"latency runtime must be one of {', '.join(RUNTIMES)} and stat one of {', '.join(STATS)}; "
                          f"got {runtime!r}, {stat!r}")
    x = np.random.default_rng(0).random(input_shape, dtype=np.float32)
    stats = benchmark(load(path, runtime=runtime, threads=1), [x], repeats=repeats, warmup=warmup)
    return {"ms": stats.min_ms if stat == "min" else stats.median_ms, "min_ms": stats.min_ms,
            "median_ms": stats.median_ms}


def measure_latency(model: Any, input_shape: tuple[int, ...], runtime: str = "onnxruntime", repeats: int = 100,
                    warmup: int = 10, stat: str = "min", keep: str | Path | None = None) -> dict[str, Any]:
    """Export the deploy form of ``model`` and time it on ``runtime`` with one thread: ``{"ms", "min_ms",
    "median_ms", "onnx"}`` (the ONNX file is kept only in the folder ``keep``)."""
    with contextlib.ExitStack() as stack:
        folder = Path(keep) if keep is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        path = export_candidate(model, input_shape, folder)
        return {**time_onnx(path, input_shape, runtime, repeats, warmup, stat),
                "onnx": str(path) if keep is not None else None}


def predict_latency(model: Any, input_shape: tuple[int, ...], target: Any = "cpu", calibration: Any = None) -> float:
    """Predicted latency (ms per frame) of the deploy form of ``model`` on ``target`` (``estimate_latency`` with
    ``calibration``, else the target's own calibration, else the plain roofline)."""
    from ...blocks.reparam import deploy_form
    from ...targets.latency import estimate_latency

    deployed, _ = deploy_form(model.eval())
    return estimate_latency(deployed, target, input_shape, calibration=calibration).ms


@dataclass(frozen=True)
class PredictorConfig:
    """How ``calibrate_predictor`` measures: on ``runtime``, ``archs`` sampled architectures to fit the ``cpu``
    latency model (0: judge the current one without fitting) and ``held_out`` more to judge it on."""

    runtime: str = "onnxruntime"
    archs: int = 60
    held_out: int = 50
    repeats: int = 100
    stat: str = "min"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"unknown runtime {self.runtime!r}; the predictor is calibrated on {', '.join(RUNTIMES)}")
        if self.stat not in STATS:
            raise ConfigError(f"unknown latency stat {self.stat!r}; choose one of {', '.join(STATS)}")
        if self.archs in (1, 2) or self.archs < 0 or self.held_out < 2 or self.repeats < 1:
            raise ConfigError(f"archs must be 0 or >= 3 (a fit needs 3 rows), held_out >= 2 and repeats >= 1 (got "
                              f"{self.archs}, {self.held_out}, {self.repeats})")


@dataclass
class PredictorReport:
    """Measured vs predicted latency on held-out sampled architectures, for the fitted model and the roofline."""

    runtime: str
    calibrated: bool                 # False: no fit (archs=0), the cpu target's current model was judged
    rows: list[dict[str, Any]] = field(default_factory=list)     # arch, measured_ms, predicted_ms, roofline_ms
    fit_rows: int = 0
    within_10pct: float = 0.0        # share of held-out archs predicted within +-10 % of the measurement
    kendall_tau: float = 0.0
    mean_abs_error_pct: float = 0.0
    roofline: dict[str, float] = field(default_factory=dict)      # the same three for the uncalibrated roofline
    band: float | None = None        # the calibration's own leave-one-out band on the fit rows
    structure: str = ""              # the model structure leave-one-out chose (see host_structures)
    loo_within_10pct: dict[str, float] = field(default_factory=dict)   # per candidate structure, on the fit rows
    conditions: str = ""
    host: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    calibration: Any = field(default=None, repr=False)           # the fitted targets.calibration.Calibration

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the calibration itself is its own YAML file)."""
        d = asdict(self)
        d.pop("calibration")
        return d

    def __rich__(self) -> Any:
        from rich.table import Table

        what = f"fitted on {self.fit_rows} archs" if self.calibrated else "not refitted"
        r = self.roofline
        t = Table(title=f"cpu latency model ({what}) vs {self.runtime} on {len(self.rows)} held-out archs: "
                        f"{100 * self.within_10pct:.0f}% within ±10%, Kendall τ {self.kendall_tau:.3f}, mean |error| "
                        f"{self.mean_abs_error_pct:.1f}% (plain roofline: {100 * r.get('within_10pct', 0):.0f}%, "
                        f"τ {r.get('kendall_tau', 0):.3f}, {r.get('mean_abs_error_pct', 0):.0f}%)"
                        + (f"; structure {self.structure!r} by leave-one-out" if self.structure else ""))
        for col in ("arch", "measured ms", "predicted ms", "error %", "roofline ms"):
            t.add_column(col, justify="left" if col == "arch" else "right")
        for row in self.rows[:15]:
            t.add_row(row["arch"], f"{row['measured_ms']:.4f}", f"{row['predicted_ms']:.4f}",
                      f"{row['error_pct']:+.1f}", f"{row['roofline_ms']:.4f}")
        return t


def agreement(measured: list[float], predicted: list[float]) -> tuple[float, float, float]:
    """(share within +-10 %, Kendall tau, mean |error| %) of predictions against measurements."""
    from scipy.stats import kendalltau

    if len(measured) != len(predicted) or len(measured) < 2:
        raise ConfigError("agreement needs at least two (measured, predicted) pairs")
    errors = [abs(p - m) / m for m, p in zip(measured, predicted)]
    tau = float(kendalltau(measured, predicted).statistic)
    return sum(e <= 0.10 for e in errors) / len(errors), tau, 100 * sum(errors) / len(errors)


def sample_distinct(space: SearchSpace, n: int, seed: int) -> list[Arch]:
    """``n`` distinct random architectures of ``space`` (seeded); fewer when the space is smaller."""
    import numpy as np

    rng, seen, out = np.random.default_rng(seed), set(), []
    for _ in range(50 * max(n, 1)):
        if len(out) == n:
            break
        a = space.sample(rng)
        if a.key not in seen:
            seen.add(a.key)
            out.append(a)
    return out


@dataclass
class _Row:
    arch: Arch
    ms: float
    profile: Any
    onnx: Path | None


def _measure(archs: list[Arch], cfg: PredictorConfig, keep: Path | None) -> list[_Row]:
    """Each architecture's deploy form timed on the runtime and profiled (fp32, what the cpu model reads)."""
    import torch
    from rich.progress import Progress

    from ...blocks.reparam import deploy_form
    from ...metrics.profile import profile
    from .build import build_model

    rows = []
    with Progress(transient=True) as bar:
        task = bar.add_task(f"measuring {len(archs)} architectures on {cfg.runtime}", total=len(archs))
        for i, a in enumerate(archs):
            model = build_model(a, seed=cfg.seed).eval()
            with torch.no_grad():
                lat = measure_latency(model, a.input_shape, cfg.runtime, cfg.repeats, stat=cfg.stat,
                                      keep=keep / f"{i:03d}" if keep is not None else None)
            deployed, _ = deploy_form(model)
            rows.append(_Row(a, lat["ms"], profile(deployed, a.input_shape),
                             Path(lat["onnx"]) if lat["onnx"] else None))
            bar.advance(task)
    return rows


def calibrate_predictor(space: SearchSpace, config: PredictorConfig | None = None, out: str | Path | None = None,
                        install: bool = False) -> PredictorReport:
    """Measure ``archs + held_out`` sampled architectures on this machine, fit the ``cpu`` target's latency model to
    the first ``archs`` (``targets.calibrate``) and judge it on the others. With ``out``: ``measurements.csv``,
    ``cpu_calibration.yaml``, ``predictor.json`` and the measured ONNX files; ``install``: also make the fit this
    host's ``cpu`` calibration (what ``estimate_latency(..., "cpu")`` and the NAS ``latency_pred`` then use)."""
    import datetime

    from ..._io import output_lock
    from ...metrics.hostinfo import host_info
    from ...targets.calibrate import calibrate
    from ...targets.calibration import Measurement
    from ...targets.calibration_store import save_calibration
    from ...targets.latency import estimate_from_profile
    from ...targets.target import Target

    cfg = config or PredictorConfig()
    archs = sample_distinct(space, cfg.archs + cfg.held_out, cfg.seed)
    if len(archs) < cfg.archs + cfg.held_out:
        raise ConfigError(f"the search space holds only {len(archs)} distinct architectures but archs + held_out = "
                          f"{cfg.archs + cfg.held_out} are asked for: widen the space or lower them")
    folder = Path(out) if out is not None else None
    tgt = Target.load("cpu")
    host = host_info()
    conditions = f"{cfg.runtime}, 1 thread, {cfg.stat} of {cfg.repeats} runs, fp32, batch 1"
    today = datetime.date.today().isoformat()
    with output_lock(folder) if folder is not None else contextlib.nullcontext():
        rows = _measure(archs, cfg, folder / "onnx" if folder is not None else None)
        fit, held = rows[: cfg.archs], rows[cfg.archs:]
        measurements = [Measurement(str(r.onnx) if r.onnx else r.arch.key, r.arch.input_shape, r.ms,
                                    f"measured with edgedeploy nas calibrate on {host.cpu_model}", conditions, today,
                                    label=r.arch.key, profile=r.profile,
                                    outputs=((1, r.arch.num_classes),)) for r in rows]
        fits = {name: calibrate(tgt, measurements[: cfg.archs], structure)
                for name, structure in host_structures(conditions, host.flags).items()} if fit else {}
        structure = max(fits, key=lambda name: loo_score(fits[name])) if fits else ""
        cal = fits.get(structure)
        prec = tgt.precisions[0]
        outs = [(1, space.num_classes)]
        predicted = [estimate_from_profile(r.profile, tgt, prec, cal, outs).ms if cal is not None else
                     estimate_from_profile(r.profile, tgt, prec, _current(tgt), outs).ms for r in held]
        roof = [estimate_from_profile(r.profile, tgt, prec, None, outs).ms for r in held]
        measured = [r.ms for r in held]
        share, tau, mae = agreement(measured, predicted)
        r_share, r_tau, r_mae = agreement(measured, roof)
        report = PredictorReport(
            runtime=cfg.runtime, calibrated=cal is not None, fit_rows=len(fit),
            rows=[{"arch": r.arch.key, "input_shape": list(r.arch.input_shape), "measured_ms": r.ms, "predicted_ms": p,
                   "error_pct": 100 * (p - r.ms) / r.ms, "roofline_ms": q} for r, p, q in zip(held, predicted, roof)],
            within_10pct=share, kendall_tau=tau, mean_abs_error_pct=mae,
            roofline={"within_10pct": r_share, "kendall_tau": r_tau, "mean_abs_error_pct": r_mae},
            band=cal.band if cal is not None else None, conditions=conditions, host=host.to_dict(), calibration=cal,
            structure=structure, loo_within_10pct={name: loo_score(c)[0] for name, c in fits.items()})
        if folder is not None:
            report.files = _write(folder, measurements, cfg.archs, report)
    if install and cal is not None:
        report.files["installed"] = str(save_calibration(cal, tgt))
    return report


def host_structures(conditions: str, flags: Any = ()) -> dict[str, Any]:
    """The candidate structures of the cpu latency model for a host runtime, by name; ``calibrate_predictor`` keeps
    the one with the best leave-one-out on its fit rows. ``plain``: the default op-class groups, convolutions timed
    by their MACs rather than the roofline (their activations sit in cache: the DRAM term misleads), residual
    additions folded into the convolution before them, one per-layer cost. ``blocked``: convolutions timed on whole
    SIMD channel blocks (``flags``: 16 channels with AVX-512, else 8; ONNX Runtime's NCHWc kernels pad a 36-channel
    output to 48), 5 x 5 kernels in groups of their own, and a per-layer cost per group (kernel dispatch differs).
    On the digits space (60 fit + 50 held-out archs, one thread, min of 100 runs), share within +-10 %, plain /
    blocked: ONNX Runtime leave-one-out 52 / 83 %, held out 52 / 84 % (a second measurement: 57 / 72 %, 70 % held
    out); OpenVINO leave-one-out 98 / 100 %, held out 94 / 94 %."""
    from dataclasses import replace

    from ...targets.calibrate import DEFAULT_FUSED, DEFAULT_GROUPS, CalibrateConfig

    compute = tuple(g for g in DEFAULT_GROUPS if g in ("conv", "grouped", "conv1x1", "depthwise"))
    plain = CalibrateConfig(groups=dict(DEFAULT_GROUPS), compute_groups=compute,
                            fused=frozenset(DEFAULT_FUSED | {"eltwise"}), conditions=conditions,
                            channel_block=0, per_layer_groups=False)
    block = 16 if any(str(f).lower().startswith("avx512") for f in flags) else 8
    blocked = replace(plain, groups={**DEFAULT_GROUPS, "conv_k5": ("conv_k5",), "depthwise_k5": ("depthwise_k5",)},
                      compute_groups=(*compute, "conv_k5", "depthwise_k5"), channel_block=block, per_layer_groups=True)
    return {"plain": plain, "blocked": blocked}


def loo_score(cal: Any) -> tuple[float, float]:
    """How well a calibration's leave-one-out rows fit: (share within +-10 %, minus mean |error|); higher is better."""
    errs = [abs(r.error) for r in cal.leave_one_out()]
    return sum(e <= 0.10 for e in errs) / len(errs), -sum(errs) / len(errs)


def _current(target: Any) -> Any:
    from ...targets.calibration_store import target_calibration

    return target_calibration(target)


def _write(folder: Path, measurements: list[Any], n_fit: int, report: PredictorReport) -> dict[str, str]:
    """measurements.csv (every row, marked fit / held-out), the calibration YAML and predictor.json."""
    import csv
    import io

    from ..._io import write_bytes_atomic, write_json_atomic

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "input_shape", "latency_ms", "source", "conditions", "date", "label", "set"])
    for i, m in enumerate(measurements):
        w.writerow([m.model, "x".join(map(str, m.input_shape)), f"{m.latency_ms:.6f}", m.source, m.conditions,
                    m.date, m.label, "fit" if i < n_fit else "held-out"])
    files = {"measurements": str(write_bytes_atomic(folder / "measurements.csv", buf.getvalue().encode()))}
    if report.calibration is not None:
        path = folder / "cpu_calibration.yaml"
        report.calibration.to_yaml(path)
        files["calibration"] = str(path)
    files["report"] = str(folder / "predictor.json")
    write_json_atomic(folder / "predictor.json", report.to_dict())
    return files
