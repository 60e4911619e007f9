"""QNN HTP backend: ONNX Runtime with the onnxruntime-qnn plugin, CPU fallback disabled.

Opens QNN context models (``*_ctx.onnx`` from ``export_qnn``) and QNN-ready QDQ models. On x86 the HTP
backend runs in emulation: its timings are not device latency (use the ``qualcomm-htp`` target's estimate).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError
from .base import register_runtime
from .onnxruntime_rt import OrtSession, check_model_file

EMULATION_NOTE = ("QNN HTP runs in x86 emulation here: timings are not device latency; use the qualcomm-htp "
                  "target's roofline estimate for the device")
_OPTIONS = ("soc_model", "htp_arch", "performance_mode", "provider_options")


@register_runtime("qnn")
class QnnSession(OrtSession):
    """A model on the QNN HTP backend. Options: soc_model, htp_arch, performance_mode, provider_options (dict)."""

    suffixes = (".onnx",)
    priority = 0                      # plain .onnx files go to the onnxruntime backend unless runtime="qnn"
    timing_note: ClassVar[str] = EMULATION_NOTE
    float_precision: ClassVar[str] = "fp16"   # the HTP has no fp32 datapath: float graphs run in fp16

    @classmethod
    def claims(cls, path: Path) -> bool:
        """A QNN EP-context model (``*_ctx.onnx``) only loads on the QNN backend."""
        from ..export.qnn_ep import is_qnn_context_model

        return is_qnn_context_model(path)

    def _open(self, source: Any, threads: int | None, options: dict[str, Any]) -> None:
        from ..export import qnn_ep

        unknown = set(options) - set(_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown qnn runtime option(s) {sorted(unknown)}; valid: {', '.join(_OPTIONS)}")
        path = check_model_file(source, ".onnx")
        provider: dict[str, Any] = dict(options.get("provider_options") or {})
        if options.get("soc_model") is not None:
            provider["soc_model"] = options["soc_model"]
        if options.get("htp_arch") is not None:
            provider["htp_arch"] = options["htp_arch"]
        if options.get("performance_mode") is not None:
            provider["htp_performance_mode"] = options["performance_mode"]
        self.session = qnn_ep.open_session(path, qnn_ep.validate_provider_options(provider), threads=threads)
        self.is_context_model = qnn_ep.is_qnn_context_model(path)
        warnings.warn(EMULATION_NOTE, UserWarning, stacklevel=4)
