"""OpenVINO backend (CPU by default, f32 inference precision unless asked otherwise)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError, ConfigError, ModelRunError
from .base import Session, TensorInfo, register_runtime
from .onnxruntime_rt import check_model_file

_OPTIONS = ("device", "precision_hint", "performance_hint", "config")


def _port_info(port: Any, default: str) -> TensorInfo:
    try:
        name = port.get_any_name()
    except RuntimeError:
        name = default
    ps = port.get_partial_shape()
    shape = None if ps.rank.is_dynamic else tuple(d.get_length() if d.is_static else None for d in ps)
    return TensorInfo(name, shape, str(np.dtype(port.get_element_type().to_dtype())))


def compile_config(threads: int | None, precision_hint: str = "f32", performance_hint: str = "LATENCY",
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The OpenVINO compile config edgedeploy uses; ``performance_hint=""`` sets none (tune with ``extra``)."""
    cfg: dict[str, Any] = {"PERFORMANCE_HINT": performance_hint} if performance_hint else {}
    if precision_hint:
        cfg["INFERENCE_PRECISION_HINT"] = precision_hint
    if threads is not None:
        cfg["INFERENCE_NUM_THREADS"] = threads
    cfg.update(extra or {})
    return cfg


@register_runtime("openvino")
class OpenVinoSession(Session):
    """OpenVINO. Options: ``device`` ("CPU"), ``precision_hint`` ("f32"; "bf16"/"f16" or "" for the
    plugin default), ``performance_hint`` ("LATENCY"), ``config`` (extra compile properties)."""

    suffixes = (".xml", ".onnx")
    priority = 5    # the only reader of .xml; ONNX Runtime (10) stays the default for .onnx

    def _open(self, source: Any, threads: int | None, options: dict[str, Any]) -> None:
        import openvino as ov

        unknown = set(options) - set(_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown openvino option(s) {sorted(unknown)}; valid: {', '.join(_OPTIONS)}")
        path = Path(source)
        suffix = path.suffix.lower()
        check_model_file(path, suffix if suffix in self.suffixes else ".xml")
        if suffix == ".xml" and not path.with_suffix(".bin").is_file():
            raise ArtifactError(f"{path.with_suffix('.bin')} (the weights of {path.name}) is missing; "
                                "keep the .xml and .bin together or re-export the IR")
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # noqa: BLE001
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"cannot read {path} with OpenVINO ({first[:200]}); the file is corrupt: "
                                "re-export it") from exc
        device = options.get("device", "CPU")
        if device not in core.available_devices:
            raise ConfigError(f"OpenVINO device {device!r} is not available; available: {core.available_devices}")
        self.config = compile_config(threads, options.get("precision_hint", "f32"),
                                     options.get("performance_hint", "LATENCY"), options.get("config"))
        try:
            self.compiled = core.compile_model(model, device, self.config)
        except Exception as exc:  # noqa: BLE001
            raise ArtifactError(f"OpenVINO cannot compile {path} for {device}: {str(exc).strip()[:300]}") from exc
        self.request = self.compiled.create_infer_request()

    def _describe(self) -> tuple[list[TensorInfo], list[TensorInfo]]:
        return ([_port_info(p, f"input{i}") for i, p in enumerate(self.compiled.inputs)],
                [_port_info(p, f"output{i}") for i, p in enumerate(self.compiled.outputs)])

    def _infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        try:
            result = self.request.infer({i: np.ascontiguousarray(a) for i, a in enumerate(arrays)})
        except Exception as exc:  # noqa: BLE001
            raise ModelRunError(f"OpenVINO failed running {self.source}: {str(exc).strip()[:300]}") from exc
        return [np.array(v, copy=True) for v in result.to_tuple()]
