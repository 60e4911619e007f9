"""``profile()``: what a model costs — per-layer rows and totals — for a torch module or an ONNX file."""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelRunError, ShapeError, user_code
from .aggregate import build_rows, peak_activation_bytes
from .counting import MacRules
from .energy import EnergyConfig, estimate_energy
from .types import PRECISION_BYTES, Profile

EXECUTE = ("meta", "fake", "real")
MEMORY_MODEL = ("traffic = weights + activations read from other layers + activations written for other layers "
                "(no cross-layer fusion); peak = liveness over execution order")


@dataclass(frozen=True)
class ProfileConfig:
    """Options of ``profile``; the defaults count like published model totals."""

    rules: MacRules = field(default_factory=MacRules)      # MacRules.thop() to match the tutorial's tables
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    dtype: str = "float32"                                  # dtype of generated inputs when a shape is given
    # "meta": shapes only on meta tensors (fastest), falling back to "fake" (FakeTensors) and then "real"
    # (data-dependent models); or force one of them
    execute: str = "meta"

    def __post_init__(self) -> None:
        if self.execute not in EXECUTE:
            raise ConfigError(f"ProfileConfig.execute must be one of {', '.join(EXECUTE)}, got {self.execute!r}")


def _check_precision(precision: str) -> None:
    if precision not in PRECISION_BYTES:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {sorted(PRECISION_BYTES)}")


def _make_inputs(inputs_or_shape: Any, dtype: str) -> tuple[Any, ...]:
    import torch

    if isinstance(inputs_or_shape, torch.Tensor):
        return (inputs_or_shape,)
    from ..shapes import check_shape, parse_shape

    if isinstance(inputs_or_shape, str):
        inputs_or_shape = parse_shape(inputs_or_shape)
    if isinstance(inputs_or_shape, Sequence) and inputs_or_shape and all(isinstance(d, int) for d in inputs_or_shape):
        return (torch.zeros(check_shape(tuple(inputs_or_shape)), dtype=getattr(torch, dtype)),)
    if isinstance(inputs_or_shape, Sequence) and inputs_or_shape:
        return tuple(_make_inputs(x, dtype)[0] if not isinstance(x, torch.Tensor) else x for x in inputs_or_shape)
    raise ShapeError(f"cannot build model inputs from {inputs_or_shape!r}: pass a tensor, a tuple of tensors, "
                     "a shape like (1, 3, 224, 224), or a list of shapes")


def _trace_with_fallback(model: Any, inputs: tuple[Any, ...], cfg: ProfileConfig) -> Any:
    """Trace on meta tensors, else FakeTensors, else for real: each failure (a tensor made on the CPU inside
    forward, data-dependent control flow, an op without a meta kernel) falls back to the next."""
    from .torch_trace import trace_module

    order = EXECUTE[EXECUTE.index(cfg.execute):]
    fake_log = logging.getLogger("torch._subclasses.fake_tensor")
    level = fake_log.level
    fake_log.setLevel(logging.CRITICAL)      # a failure is expected and retried; do not print a traceback
    try:
        for mode in order[:-1]:
            try:
                return trace_module(model, inputs, cfg.rules, execute=mode)
            except ModelRunError:
                raise
            except Exception:  # noqa: BLE001 - retried with the next, more general execution
                continue
    finally:
        fake_log.setLevel(level)
    return trace_module(model, inputs, cfg.rules, execute=order[-1])


def profile(model: Any, inputs_or_shape: Any = None, precision: str = "fp32", fps: float | None = None,
            config: ProfileConfig | None = None) -> Profile:
    """Profile a torch module (traced at dispatch level) or an ``.onnx`` file (ONNX shape inference)."""
    _check_precision(precision)
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps)
                            or fps <= 0):
        raise ConfigError(f"fps must be > 0 (got {fps})")
    cfg = config or ProfileConfig()
    if isinstance(model, (str, Path)):
        from .onnx_trace import trace_onnx

        tr = trace_onnx(Path(model), inputs_or_shape, cfg.rules)
        name, source = Path(model).name, "onnx"
    else:
        import torch

        if not isinstance(model, torch.nn.Module):
            raise ConfigError(f"profile() takes a torch.nn.Module or an .onnx path, not {type(model).__name__}")
        if inputs_or_shape is None:
            raise ShapeError("profile() needs inputs or an input shape for a torch model, e.g. (1, 3, 224, 224)")
        inputs = _make_inputs(inputs_or_shape, cfg.dtype)
        was_training = model.training
        model.eval()
        try:
            with user_code(f"{type(model).__name__}.forward"):
                tr = _trace_with_fallback(model, inputs, cfg)
        except ModelRunError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's forward failed; say so at the given shape
            shapes = ", ".join("x".join(map(str, t.shape)) for t in inputs if hasattr(t, "shape"))
            raise ModelRunError(f"{type(model).__name__}.forward failed on input {shapes}: "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
                                "check the input shape the model expects") from exc
        finally:
            model.train(was_training)
        name, source = type(model).__name__, "torch"
    layers = build_rows(tr.events, tr.output_keys, precision, tr.shapes)
    sizes = {p: tr.weight_float_numel * b + tr.weight_other_bytes for p, b in PRECISION_BYTES.items() if p != "bf16"}
    return Profile(
        model=name, input_shapes=[t.shape for t in tr.inputs], precision=precision, layers=layers,
        params=tr.params, macs=sum(r.macs for r in layers), elem_ops=sum(r.elem_ops for r in layers),
        model_size_bytes=sizes, peak_activation_bytes=peak_activation_bytes(tr.events, tr.inputs, tr.output_keys, precision),
        traffic_bytes=sum(r.traffic_bytes for r in layers), energy=estimate_energy(layers, precision, cfg.energy),
        fps=fps, unsupported=dict(tr.unsupported), conventions=f"{cfg.rules}; {MEMORY_MODEL}", source=source,
    )
