"""QNN quantizer: QNN-ready QDQ ONNX (u8 or u16 activations, or a u8/u16 mix chosen by sensitivity).

``QuantConfig(mode="int8-static", backend="qnn", extra={"activations": "u8"|"u16"|"mixed",
"accuracy_budget": 0.99})``; ``per_channel=True`` gives symmetric per-channel s8 weights, ``False``
QNN's default per-tensor u8 weights. The artifact is checked here on the CPU EP (the QDQ reference);
``export_qnn`` compiles it for a Snapdragon SoC and verifies it on the QNN HTP backend.
"""
from __future__ import annotations

from typing import Any

from ....errors import ConfigError
from ..registry import Artifact, Job, Quantizer, register_quantizer

_EXTRA = {"activations": ("u8", "u16", "mixed"), "accuracy_budget": None}


@register_quantizer
class QnnQuantizer(Quantizer):
    """onnxruntime.quantization's QNN config (qnn_preprocess_model + get_qnn_qdq_config + quantize)."""

    name = "qnn"
    modes = ("int8-static",)

    def check(self, config: Any) -> None:
        unknown = set(config.extra) - set(_EXTRA)
        if unknown:
            raise ConfigError(f"unknown option(s) {sorted(unknown)} in QuantConfig.extra for backend qnn; "
                              f"valid: {', '.join(_EXTRA)}")
        acts = config.extra.get("activations", "u8")
        if acts not in _EXTRA["activations"]:
            raise ConfigError(f"backend qnn: extra activations={acts!r} is invalid; choose one of "
                              f"{', '.join(_EXTRA['activations'])}")
        budget = config.extra.get("accuracy_budget", 0.99)
        if not 0.0 <= float(budget) <= 1.0:
            raise ConfigError(f"backend qnn: accuracy_budget is a fraction in [0, 1] (got {budget})")
        if config.weight_bits != 8:
            raise ConfigError(f"backend qnn quantizes weights to 8 bits (got weight_bits={config.weight_bits}); "
                              "use activations='u16' for more precision")
        if config.symmetric:
            raise ConfigError("backend qnn uses asymmetric u8/u16 activations (QNN's layout); set symmetric=False")

    def quantize(self, job: Job) -> Artifact:
        from ....export import qnn_quant

        cfg = job.config
        acts = cfg.extra.get("activations", "u8")
        weights = "s8" if cfg.per_channel else "u8"
        options = {"method": cfg.calibration, "exclude": job.ignored_nodes}
        pre = qnn_quant.preprocess(job.fp32_onnx, job.out / "_qnn_preprocessed.onnx")
        dest = job.out / f"model_qnn_{acts}.onnx"
        try:
            if acts == "mixed":
                qnn_quant.choose_mixed(pre, dest, job.calibration, job.calibration,
                                       float(cfg.extra.get("accuracy_budget", 0.99)), weights, **options)
            else:
                qnn_quant.quantize_qdq(pre, dest, job.calibration, acts, weights, **options)
        finally:
            pre.unlink(missing_ok=True)
        return Artifact(dest, onnx_path=dest)
