"""QNN quantizer: QNN-ready QDQ ONNX (u8 or u16 activations, or a u8/u16 mix chosen by sensitivity).

``QuantConfig(mode="int8-static", backend="qnn", qnn=QnnQuantOptions(activations="mixed"))``: the one QNN
quantization (``export_qnn`` quantizes through this backend too). Weights: QNN's per-tensor u8 by default,
symmetric per-channel s8 with ``per_channel=True``. The artifact is checked here on the CPU EP (the QDQ
reference); ``export_qnn`` compiles it for a Snapdragon SoC and verifies it on the QNN HTP backend.
"""
from __future__ import annotations

from typing import Any

from ....errors import ConfigError
from ..registry import Artifact, Job, Quantizer, register_quantizer


def qnn_weights(config: Any) -> str:
    """The QNN weight type a QuantConfig asks for: s8 (symmetric per-channel) or u8 (QNN's per-tensor default)."""
    return "s8" if config.per_channel else "u8"


@register_quantizer
class QnnQuantizer(Quantizer):
    """onnxruntime.quantization's QNN config (qnn_preprocess_model + get_qnn_qdq_config + quantize)."""

    name = "qnn"
    modes = ("int8-static",)

    def check(self, config: Any) -> None:
        if config.weight_bits != 8:
            raise ConfigError(f"backend qnn quantizes weights to 8 bits (got weight_bits={config.weight_bits}); "
                              "use QnnQuantOptions(activations='u16') for more precision")
        if config.symmetric:
            raise ConfigError("backend qnn uses asymmetric u8/u16 activations (QNN's layout); set symmetric=False")

    def quantize(self, job: Job) -> Artifact:
        from .. import qnn_qdq

        cfg = job.config
        acts = cfg.qnn.activations
        options = {"method": cfg.calibration, "exclude": job.ignored_nodes}
        pre = qnn_qdq.preprocess(job.fp32_onnx, job.out / "_qnn_preprocessed.onnx")
        dest = job.out / f"model_qnn_{acts}.onnx"
        try:
            if acts == "mixed":
                choice = qnn_qdq.choose_mixed(pre, dest, job.calibration, job.calibration, cfg.qnn.accuracy_budget,
                                              qnn_weights(cfg), **options)
                note = (f"qnn mixed: {len(choice.u16_tensors)} of {choice.n_activations} activations in u16, "
                        f"agreement {choice.agreement:.1%} with FP32 on calibration data")
            else:
                qnn_qdq.quantize_qdq(pre, dest, job.calibration, acts, qnn_weights(cfg), **options)
                note = f"qnn {acts} activations, {qnn_weights(cfg)} weights"
        finally:
            pre.unlink(missing_ok=True)
        return Artifact(dest, onnx_path=dest, notes=(note,), mixed=choice if acts == "mixed" else None)
