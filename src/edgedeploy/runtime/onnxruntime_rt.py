"""ONNX Runtime backend (CPU provider, plus accelerated providers when present)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError, ConfigError, ModelRunError, UnsupportedOpError
from .base import Session, TensorInfo, register_runtime

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int16)": "int16", "tensor(uint16)": "uint16",
    "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool",
}
_ACCELERATED = ("CUDAExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider")
_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}


def check_model_file(path: Any, suffix: str) -> Path:
    """Return ``path`` as a Path, or raise ArtifactError if it is missing or empty."""
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"model file {p} does not exist; check the path or export the model first")
    if p.stat().st_size == 0:
        raise ArtifactError(f"model file {p} is empty; re-export it")
    if p.suffix.lower() != suffix:
        raise ArtifactError(f"model file {p} is not a {suffix} file")
    return p


def describe_ort(session: Any) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """(inputs, outputs) of an ONNX Runtime InferenceSession as TensorInfo lists."""
    def info(args: Any) -> TensorInfo:
        shape = tuple(d if isinstance(d, int) else None for d in args.shape)
        return TensorInfo(args.name, shape, _ORT_TYPES.get(args.type))
    return [info(i) for i in session.get_inputs()], [info(o) for o in session.get_outputs()]


@register_runtime("onnxruntime")
class OrtSession(Session):
    """ONNX Runtime. Options: ``providers`` (list), ``optimization`` (disable|basic|extended|all)."""

    suffixes = (".onnx",)
    priority = 10

    def _open(self, source: Any, threads: int | None, options: dict[str, Any]) -> None:
        import onnxruntime as ort

        unknown = set(options) - {"providers", "optimization", "profile_prefix"}
        if unknown:
            raise ConfigError(f"unknown onnxruntime option(s) {sorted(unknown)}; valid: providers, optimization, "
                              "profile_prefix")
        in_memory = hasattr(source, "SerializeToString")          # an onnx.ModelProto built in memory
        path = source.SerializeToString() if in_memory else check_model_file(source, ".onnx")
        so = ort.SessionOptions()
        if options.get("profile_prefix"):
            so.enable_profiling = True
            so.profile_file_prefix = str(options["profile_prefix"])
        so.log_severity_level = 3
        if threads is not None:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        level = options.get("optimization", "all")
        if level not in _LEVELS:
            raise ConfigError(f"unknown onnxruntime optimization {level!r}; choose one of {', '.join(_LEVELS)}")
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[level])
        available = ort.get_available_providers()
        providers = options.get("providers") or [p for p in _ACCELERATED if p in available] + ["CPUExecutionProvider"]
        missing = [p for p in providers if p not in available]
        if missing:
            raise ConfigError(f"onnxruntime provider(s) {missing} are not available; available: {available}")
        try:
            self.session = ort.InferenceSession(path if in_memory else str(path), sess_options=so, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises pybind errors for corrupt files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "NOT_IMPLEMENTED" in first:
                raise UnsupportedOpError(f"ONNX Runtime has no kernel for a node of {'the model' if in_memory else path} "
                                         f"({first}); the op, its "
                                         "opset or its input dtypes (e.g. a float64 tensor left by the exporter) "
                                         "are unsupported: re-export with another opset or exporter") from exc
            raise ArtifactError(f"cannot load {'the in-memory model' if in_memory else path} with ONNX Runtime "
                                f"({first}); the file is corrupt or not an ONNX model: re-export it") from exc

    def _describe(self) -> tuple[list[TensorInfo], list[TensorInfo]]:
        return describe_ort(self.session)

    def _infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        feed = {i.name: a for i, a in zip(self.inputs, arrays)}
        try:
            return list(self.session.run(None, feed))
        except Exception as exc:  # noqa: BLE001
            raise ModelRunError(f"ONNX Runtime failed running {self.source}: {str(exc).strip()[:300]}") from exc


def node_times(onnx_path: Any, repeats: int = 20, warmup: int = 3, threads: int = 1) -> dict[str, float]:
    """Median time (ms) of every node of an ONNX model on ONNX Runtime's CPU (its profiler; optimizations off so
    node names survive), on seeded example inputs."""
    import json
    import statistics
    import tempfile

    if repeats < 1 or warmup < 0 or threads < 1:
        raise ConfigError(f"node_times needs repeats >= 1, warmup >= 0, threads >= 1 (got {repeats}, {warmup}, "
                          f"{threads})")
    with tempfile.TemporaryDirectory(prefix="edgedeploy-node-times-") as tmp:
        session = OrtSession(Path(onnx_path), threads=threads, optimization="disable",
                             profile_prefix=str(Path(tmp) / "ort"))
        arrays = session.example_inputs()
        for _ in range(warmup + repeats):
            session.run(arrays)
        events = json.loads(Path(session.session.end_profiling()).read_text())
    per: dict[str, list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
            per.setdefault(e["name"][: -len("_kernel_time")], []).append(e["dur"] / 1e3)
    # ORT records every run: each node's first ``warmup`` samples are the warm-up
    return {name: statistics.median(v[warmup:] or v) for name, v in per.items()}
