"""ONNX Runtime quantizer: static QDQ (u8 activations x s8 per-channel weights), dynamic INT8, float16."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...._io import atomic_path
from ....errors import ConfigError
from ..registry import Artifact, Job, Quantizer, register_quantizer


class _Reader:
    """ONNX Runtime CalibrationDataReader over validated feeds."""

    def __init__(self, feeds: list[dict[str, Any]]) -> None:
        self._feeds = feeds
        self._it = iter(feeds)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._feeds)


@register_quantizer
class OnnxRuntimeQuantizer(Quantizer):
    """onnxruntime.quantization: quantize_static (QDQ), quantize_dynamic, and float16 conversion."""

    name = "onnxruntime"
    modes = ("fp16", "int8-static", "int8-dynamic")

    def quantize(self, job: Job) -> Artifact:
        cfg = job.config
        if cfg.mode == "fp16":
            return self._fp16(job)
        from onnxruntime.quantization import QuantType, quantize_dynamic

        dest = job.out / f"model_{cfg.mode.replace('-', '_')}.onnx"
        if cfg.mode == "int8-dynamic":
            # MatMulConstBOnly: only weight MatMuls (attention's activation x activation MatMuls stay float)
            with atomic_path(dest) as tmp:
                quantize_dynamic(str(job.fp32_onnx), str(tmp), per_channel=cfg.per_channel is not False,
                                 weight_type=QuantType.QInt8, nodes_to_exclude=job.ignored_nodes,
                                 extra_options={"MatMulConstBOnly": True})
            return Artifact(dest, onnx_path=dest)
        return self._static(job, dest)

    def _static(self, job: Job, dest: Path) -> Artifact:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        cfg = job.config
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[cfg.calibration]
        symmetric = bool(cfg.symmetric)          # None -> asymmetric u8 activations (x86 VNNI's fast u8*s8 path)
        pre = job.out / "_preprocessed.onnx"
        try:
            quant_pre_process(str(job.fp32_onnx), str(pre), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - pre-processing is an optimization; quantize the original if it fails
            pre = job.fp32_onnx
        with atomic_path(dest) as tmp:
            quantize_static(str(pre), str(tmp), _Reader(job.calibration), quant_format=QuantFormat.QDQ,
                            per_channel=cfg.per_channel is not False, calibrate_method=method,
                            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                            weight_type=QuantType.QInt8, nodes_to_exclude=job.ignored_nodes,
                            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True})
        if pre != job.fp32_onnx:
            pre.unlink(missing_ok=True)
        return Artifact(dest, onnx_path=dest)

    def _fp16(self, job: Job) -> Artifact:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        dest = job.out / "model_fp16.onnx"
        model = convert_float_to_float16(onnx.load(str(job.fp32_onnx)), keep_io_types=True,
                                         node_block_list=job.ignored_nodes or None)
        with atomic_path(dest) as tmp:
            onnx.save(model, str(tmp))
        return Artifact(dest, onnx_path=dest)

    def check(self, config: Any) -> None:
        if config.weight_bits != 8:
            raise ConfigError(f"backend onnxruntime quantizes weights to 8 bits only (got weight_bits="
                              f"{config.weight_bits}); use backend='torch' for a lower-bit weight grid")
