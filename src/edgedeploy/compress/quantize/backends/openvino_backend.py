"""OpenVINO quantizer: NNCF post-training INT8 (its ONNX backend, then OpenVINO IR) and FP16 IR."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...._io import atomic_path
from ....errors import ConfigError
from ..registry import Artifact, Job, Quantizer, register_quantizer


@register_quantizer
class OpenVinoQuantizer(Quantizer):
    """nncf.quantize on the ONNX model (QDQ), converted to an INT8 OpenVINO IR; FP16 IR via compress_to_fp16."""

    name = "openvino"
    modes = ("fp16", "int8-static")
    runtime = "openvino"          # its sessions use INFERENCE_PRECISION_HINT=f32 (no silent bf16)

    def check(self, config: Any) -> None:
        if config.calibration == "entropy":
            raise ConfigError("backend openvino (NNCF) has no entropy calibration; use calibration='minmax' "
                              "or 'percentile', or backend='onnxruntime'")
        if config.weight_bits != 8:
            raise ConfigError(f"backend openvino quantizes weights to 8 bits only (got weight_bits="
                              f"{config.weight_bits}); use backend='torch' for a lower-bit weight grid")

    def baseline(self, fp32_onnx: Path, out: Path) -> Path:
        return _save_ir(fp32_onnx, out / "model_fp32.xml", fp16=False)

    def quantize(self, job: Job) -> Artifact:
        cfg = job.config
        if cfg.mode == "fp16":
            return Artifact(_save_ir(job.fp32_onnx, job.out / "model_fp16.xml", fp16=True))
        import nncf
        import onnx
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        samples = [{k: v[i:i + 1] for k, v in feed.items()} for feed in job.calibration
                   for i in range(len(next(iter(feed.values()))))][:cfg.calibration_samples]
        advanced = AdvancedQuantizationParameters(
            disable_bias_correction=not cfg.bias_correction,
            weights_quantization_params=QuantizationParameters(per_channel=cfg.per_channel is not False),
            activations_range_estimator_params=(RangeEstimatorParametersSet.MEAN_QUANTILE
                                                if cfg.calibration == "percentile" else None))
        # symmetric activations are NNCF's PERFORMANCE preset (its default); asymmetric is MIXED
        preset = nncf.QuantizationPreset.MIXED if cfg.symmetric is False else nncf.QuantizationPreset.PERFORMANCE
        qdq = nncf.quantize(onnx.load(str(job.fp32_onnx)), nncf.Dataset(samples), preset=preset,
                            subset_size=len(samples), ignored_scope=nncf.IgnoredScope(names=job.ignored_nodes),
                            advanced_parameters=advanced)
        twin = job.out / "model_int8_qdq.onnx"
        with atomic_path(twin) as tmp:
            onnx.save(qdq, str(tmp))
        return Artifact(_save_ir(twin, job.out / "model_int8.xml", fp16=False), onnx_path=twin)


def _save_ir(onnx_path: Path, dest: Path, fp16: bool) -> Path:
    """Convert an ONNX file to OpenVINO IR (xml+bin), weights compressed to FP16 when asked."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    tmp = dest.with_name(f".{dest.stem}.tmp.xml")            # xml + bin written beside, then renamed
    try:
        ov.save_model(model, str(tmp), compress_to_fp16=fp16)
        os.replace(tmp.with_suffix(".bin"), dest.with_suffix(".bin"))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)
    return dest
