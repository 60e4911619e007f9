"""QNN HTP backend: ONNX Runtime with the onnxruntime-qnn plugin, CPU fallback disabled, in a child process.

Opens QNN context models (``*_ctx.onnx`` from ``export_qnn``) and QNN-ready QDQ models. On x86 the HTP
backend runs in emulation, inside a child process (``edgedeploy._isolate.Worker``) so that a native abort
is an error here, not the end of the caller: its timings are not device latency (and include the pipe to
the child); use the ``qualcomm-htp`` target's estimate for the device.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from .base import Session, TensorInfo, register_runtime
from .onnxruntime_rt import check_model_file, describe_ort

EMULATION_NOTE = ("QNN HTP runs in x86 emulation here (in a child process): timings are not device latency; use "
                  "the qualcomm-htp target's estimate for the device")
_OPTIONS = ("soc_model", "htp_arch", "performance_mode", "provider_options")


class _ChildSession:
    """What lives in the child: one ORT session on QNN HTP."""

    def __init__(self, path: str, provider: dict[str, str], threads: int | None) -> None:
        from .qnn_provider import open_session

        self.session = open_session(path, provider, threads=threads)

    def describe(self) -> tuple[list[TensorInfo], list[TensorInfo]]:
        return describe_ort(self.session)

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(self.session.run(None, feed))


@register_runtime("qnn")
class QnnSession(Session):
    """A model on the QNN HTP backend. Options: soc_model, htp_arch, performance_mode, provider_options (dict)."""

    suffixes = (".onnx",)
    priority = 0                      # plain .onnx files go to the onnxruntime backend unless runtime="qnn"
    timing_note: ClassVar[str] = EMULATION_NOTE
    float_precision: ClassVar[str] = "fp16"   # the HTP has no fp32 datapath: float graphs run in fp16

    @classmethod
    def claims(cls, path: Path) -> bool:
        """A QNN EP-context model (``*_ctx.onnx``) only loads on the QNN backend."""
        from .qnn_provider import is_qnn_context_model

        return is_qnn_context_model(path)

    def _open(self, source: Any, threads: int | None, options: dict[str, Any]) -> None:
        from .._isolate import Worker
        from .qnn_htp import WHAT
        from .qnn_provider import ensure_qnn, is_qnn_context_model, validate_provider_options

        unknown = set(options) - set(_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown qnn runtime option(s) {sorted(unknown)}; valid: {', '.join(_OPTIONS)}")
        path = check_model_file(source, ".onnx")
        provider: dict[str, Any] = dict(options.get("provider_options") or {})
        for key, opt in (("soc_model", "soc_model"), ("htp_arch", "htp_arch"),
                         ("htp_performance_mode", "performance_mode")):
            if options.get(opt) is not None:
                provider[key] = options[opt]
        provider = validate_provider_options(provider)
        ensure_qnn()                       # a missing plugin is a clear error here, not in the child
        self.worker = Worker(_ChildSession, str(path), provider, threads, what=f"{WHAT} session on {path.name}")
        self.is_context_model = is_qnn_context_model(path)
        warnings.warn(EMULATION_NOTE, UserWarning, stacklevel=4)

    def _describe(self) -> tuple[list[TensorInfo], list[TensorInfo]]:
        return self.worker.call("describe")

    def _infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return self.worker.call("run", {i.name: a for i, a in zip(self.inputs, arrays)})
