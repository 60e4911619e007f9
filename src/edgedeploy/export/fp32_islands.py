"""FP32 islands in an FP16 OpenVINO IR: keep precision-sensitive paths (e.g. grid_sample coordinates) in FP32.

``ov.save_model(..., compress_to_fp16=True)`` stores every float constant in FP16. For a ``grid_sample``
warp that rounds the sampling grid (a constant of normalized coordinates after OpenVINO folds it) to
~1e-3, i.e. a few hundredths of a pixel: at sharp edges of 0-255 frames the output moves by several grey
levels. ``keep_fp32_islands`` finds the nodes that compute such coordinates automatically (walking up from
each sensitive input port, e.g. GridSample's grid, until a learned layer such as a Convolution), marks them
and their constants with OpenVINO's ``DisablePrecisionConversion`` runtime attribute (kept by the FP16
compression, and by the CPU plugin when it runs a graph in bf16/f16), and checks the compressed IR
against the FP32 one on the given inputs; when that parity still fails, the island grows past the next
learned layer, up to ``max_rounds`` times.

OpenVINO 2026.4's Python API cannot construct that attribute directly: a string ``rt_info["precise_0"]``
becomes it only when an IR is serialized and read back, so the marked model is round-tripped through a
temporary FP32 IR (exact: no values change).
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ParityError, ShapeError

_MARK = "precise_0"            # the legacy rt_info key OpenVINO turns into DisablePrecisionConversion(f16)
_LEARNED = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData",
            "MatMul", "Einsum")
_SHAPE_ONLY = ("ShapeOf",)     # feed integers, not values: the walk stops there


@dataclass(frozen=True)
class IslandsConfig:
    """Which op inputs are precision-sensitive (op type -> input ports), where an island stops growing,
    the parity tolerance (max abs error <= ``rtol`` x the reference output's range), growth rounds."""

    sensitive: dict[str, tuple[int, ...]] = field(default_factory=lambda: {"GridSample": (1,)})
    stop_at: tuple[str, ...] = _LEARNED
    rtol: float = 1e-2
    max_rounds: int = 3
    precision_hint: str = "f32"    # OpenVINO CPU inference precision for the parity check ("bf16" tests the plugin)

    def __post_init__(self) -> None:
        if not self.sensitive:
            raise ConfigError("IslandsConfig.sensitive is empty; name at least one op type and input port, "
                              "e.g. {'GridSample': (1,)}")
        if not 0 < self.rtol < 1:
            raise ConfigError(f"rtol={self.rtol} must be in (0, 1) (a fraction of the output range)")
        if self.max_rounds < 1:
            raise ConfigError(f"max_rounds={self.max_rounds} must be >= 1")
        if self.precision_hint not in ("f32", "bf16", "f16"):
            raise ConfigError(f"precision_hint={self.precision_hint!r}: choose f32, bf16 or f16")


@dataclass(frozen=True)
class IslandsResult:
    """The marked model, the nodes kept FP32 (ops and constants), and FP16-vs-FP32 parity without/with them.

    ``err_*`` is the largest ``max|fp16 - fp32| / range(fp32)`` over outputs and inputs; ``max_abs_*`` the
    largest absolute difference."""

    model: Any
    kept: tuple[str, ...]
    constants: tuple[str, ...]
    rounds: int
    err_before: float
    err_after: float
    max_abs_before: float
    max_abs_after: float
    rtol: float
    inputs_checked: int
    history: tuple[float, ...] = ()      # err after each round (the island grows past one more learned layer)

    @property
    def passed(self) -> bool:
        """Whether the FP16 IR with the islands is within tolerance on every input."""
        return self.err_after <= self.rtol

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (without the model)."""
        d = {k: v for k, v in asdict(self).items() if k != "model"}
        return {**d, "kept": list(self.kept), "constants": list(self.constants), "history": list(self.history),
                "passed": self.passed}

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title="FP32 islands in the FP16 IR", show_header=False)
        rounds = ", ".join(f"{100 * e:.3f}%" for e in self.history)
        t.add_row("kept FP32", f"{len(self.kept)} ops, {len(self.constants)} constants; error per round: {rounds}")
        t.add_row("FP16 IR, no islands", f"max abs {self.max_abs_before:.3g} = {100 * self.err_before:.3f}% of range")
        t.add_row("FP16 IR + islands", f"max abs {self.max_abs_after:.3g} = {100 * self.err_after:.4f}% of range "
                                       f"(tolerance {100 * self.rtol:g}%) on {self.inputs_checked} inputs")
        t.add_row("nodes", ", ".join(self.kept[:8]) + (" ..." if len(self.kept) > 8 else ""))
        return t


def find_islands(model: Any, config: IslandsConfig | None = None, depth: int = 0) -> tuple[list[Any], list[Any]]:
    """(ops, constants) computing the sensitive inputs, walking up past ``depth`` learned layers."""
    config = config or IslandsConfig()
    ops: dict[str, Any] = {}
    consts: dict[str, Any] = {}
    starts = [(op.input(p).get_source_output().get_node(), depth) for op in model.get_ordered_ops()
              for p in config.sensitive.get(op.get_type_name(), ()) if p < op.get_input_size()]
    for op in model.get_ordered_ops():
        if op.get_type_name() in config.sensitive:
            ops[op.get_friendly_name()] = op
    best: dict[str, int] = {}
    while starts:
        node, left = starts.pop()
        name, kind = node.get_friendly_name(), node.get_type_name()
        if best.get(name, -1) >= left:
            continue
        best[name] = left
        if kind == "Parameter":
            continue
        if kind == "Constant":
            consts[name] = node
            continue
        if kind in config.stop_at:
            if left == 0:
                continue
            left -= 1
        ops[name] = node
        if kind in _SHAPE_ONLY:
            continue
        starts.extend((i.get_source_output().get_node(), left) for i in node.inputs())
    return list(ops.values()), list(consts.values())


def keep_fp32_islands(model: Any, eval_data: Sequence[Any], config: IslandsConfig | None = None) -> IslandsResult:
    """Mark the precision-sensitive nodes of ``model`` (an ``ov.Model``) FP32 and prove FP16 parity on ``eval_data``.

    ``eval_data``: a list of inputs (one array per sample for a single-input model, or a tuple of arrays).
    Save ``result.model`` with ``ov.save_model(result.model, path, compress_to_fp16=True)``; ``kept`` names
    the nodes that stay FP32. Raises ParityError when even the largest island cannot reach ``rtol``."""
    import openvino as ov

    config = config or IslandsConfig()
    if not isinstance(model, ov.Model):
        raise ConfigError(f"keep_fp32_islands needs an openvino.Model (from ov.convert_model), "
                          f"got {type(model).__name__}")
    samples = _samples(eval_data, model)
    with tempfile.TemporaryDirectory(prefix="edgedeploy-islands-") as tmp:
        ref_xml = _save(model, Path(tmp) / "fp32.xml", fp16=False)
        reference = _run(ref_xml, samples, "f32")
        plain = _errors(_run(_save(model, Path(tmp) / "plain16.xml", fp16=True), samples, config.precision_hint),
                        reference)
        rounds, marked, err, ops, consts, history = 0, model, plain, [], [], []
        for depth in range(config.max_rounds):
            ops, consts = find_islands(model, config, depth)
            if not ops and not consts:
                break
            rounds = depth + 1
            marked = _marked_copy(model, {n.get_friendly_name() for n in ops + consts}, Path(tmp) / f"m{depth}.xml")
            xml16 = _save(marked, Path(tmp) / f"island{depth}.xml", fp16=True)
            err = _errors(_run(xml16, samples, config.precision_hint), reference)
            history.append(err[0])
            if err[0] <= config.rtol:
                break
    if rounds == 0:
        marked = model
    result = IslandsResult(model=marked, kept=tuple(sorted(o.get_friendly_name() for o in ops)),
                           constants=tuple(sorted(c.get_friendly_name() for c in consts)), rounds=rounds,
                           err_before=plain[0], err_after=err[0], max_abs_before=plain[1], max_abs_after=err[1],
                           rtol=config.rtol, inputs_checked=len(samples), history=tuple(history))
    if not result.passed:
        raise ParityError(f"the FP16 IR differs from FP32 by {100 * err[0]:.3f}% of the output range (max abs "
                          f"{err[1]:.3g}) even with {len(ops)} ops and {len(consts)} constants kept FP32 after "
                          f"{rounds} round(s); tolerance {100 * config.rtol:g}%: export with precision='fp32' or "
                          "add the op types at fault to IslandsConfig.sensitive")
    return result


def _samples(eval_data: Sequence[Any], model: Any) -> list[list[np.ndarray]]:
    if eval_data is None or len(eval_data) == 0:
        raise ConfigError("keep_fp32_islands needs eval_data: a few varied inputs (random, real frames, the example)")
    n_in = len(model.inputs)
    out = []
    for i, item in enumerate(eval_data):
        arrays = [np.asarray(a) for a in (item if isinstance(item, (list, tuple)) else (item,))]
        if len(arrays) != n_in:
            raise ShapeError(f"eval_data[{i}] has {len(arrays)} array(s) but the model has {n_in} input(s)")
        out.append(arrays)
    return out


def _save(model: Any, path: Path, fp16: bool) -> Path:
    import openvino as ov

    ov.save_model(model, str(path), compress_to_fp16=fp16)
    return path


def _marked_copy(model: Any, names: set[str], path: Path) -> Any:
    """A copy of ``model`` whose ``names`` carry DisablePrecisionConversion (via an FP32 IR round trip)."""
    import openvino as ov

    copy = model.clone()
    for op in copy.get_ordered_ops():
        if op.get_friendly_name() in names:
            op.get_rt_info()[_MARK] = ""
    _save(copy, path, fp16=False)
    return ov.Core().read_model(str(path))


def _run(xml: Path, samples: list[list[np.ndarray]], hint: str) -> list[list[np.ndarray]]:
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": 1})
    request = compiled.create_infer_request()
    return [[np.array(v, copy=True) for v in request.infer({i: a for i, a in enumerate(s)}).to_tuple()]
            for s in samples]


def _errors(got: list[list[np.ndarray]], ref: list[list[np.ndarray]]) -> tuple[float, float]:
    """(max over samples/outputs of max abs error / reference range, max abs error)."""
    rel, worst = 0.0, 0.0
    for g_outs, r_outs in zip(got, ref):
        for g, r in zip(g_outs, r_outs):
            err = float(np.abs(g.astype(np.float64) - r).max())
            span = float(r.max() - r.min()) or 1.0
            rel, worst = max(rel, err / span), max(worst, err)
    return rel, worst
