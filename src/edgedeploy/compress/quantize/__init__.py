"""Quantization: FP16, post-training INT8 (static/dynamic), QAT, sensitivity and mixed precision.

``quantize(model_or_onnx, QuantConfig(mode=..., backend=...), calibration=data)`` returns a QuantResult
(artifact + QuantReport). Backends (onnxruntime, openvino/NNCF, torch fake-quant, ...) are small classes
in ``backends/`` registered with ``@register_quantizer``.
"""
from __future__ import annotations

from .api import QuantResult, quantize
from .config import QuantConfig
from .registry import Quantizer, available_backends, register_quantizer, valid_pairs
from .report import LayerReport, QuantReport
from .sensitivity import LayerSensitivity, mixed_precision, sensitivity

__all__ = ["LayerReport", "LayerSensitivity", "QuantConfig", "QuantReport", "QuantResult", "Quantizer",
           "available_backends", "mixed_precision", "quantize", "register_quantizer", "sensitivity", "valid_pairs"]
