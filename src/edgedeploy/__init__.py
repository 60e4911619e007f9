"""edgedeploy: measure, compress, export and verify PyTorch models for edge devices.

The public API is re-exported lazily so ``import edgedeploy`` stays cheap: heavy
libraries (torch, onnx, onnxruntime, openvino, nncf) load only when a function needs them.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (relative to this package)
_EXPORTS: dict[str, str] = {
    "profile": ".metrics.profile",
    "ProfileConfig": ".metrics.profile",
    "Profile": ".metrics.types",
    "LayerStats": ".metrics.types",
    "MacRules": ".metrics.counting",
    "EnergyConfig": ".metrics.energy",
    "measure": ".metrics.latency",
    "LatencyStats": ".metrics.latency",
    "Target": ".targets.target",
    "check": ".targets.check",
    "CheckReport": ".targets.check",
    "available_targets": ".targets.target",
    "load_model": ".modelref",
    "EdgeDeployError": ".errors",
}
# filled in by later stages as they land (export, runtime, blocks, compress ...)
_EXPORTS.update({
    "export_onnx": ".export.onnx", "OnnxConfig": ".export.onnx",
    "export_openvino": ".export.openvino", "OpenVinoConfig": ".export.openvino",
    "export_blob": ".export.blob", "BlobConfig": ".export.blob",
    "ExportResult": ".export.result",
    "build_depthai_pipeline": ".export.depthai", "DepthAIPipeline": ".export.depthai",
    "bake_preprocessing": ".export.onnx_preprocess", "Preprocess": ".export.onnx_preprocess",
    "load": ".runtime", "benchmark": ".runtime", "Session": ".runtime",
})
_EXPORTS.update({"reparameterize": ".blocks.reparam", "ReparamConfig": ".blocks.reparam",
                 "swap": ".blocks.swap", "SwapResult": ".blocks.swap"})
_EXPORTS.update({"export_qnn": ".export.qnn", "QnnConfig": ".export.qnn", "compile_qnn_context": ".export.qnn",
                 "qnn_unsupported_ops": ".export.qnn"})

_EXPORTS.update({
    "prune": ".compress.prune", "PruneConfig": ".compress.prune", "PruneResult": ".compress.prune",
    "PruneReport": ".compress.prune",
    "distill": ".compress.distill", "DistillConfig": ".compress.distill", "DistillResult": ".compress.distill",
})

_EXPORTS.update({"quantize": ".compress.quantize", "QuantConfig": ".compress.quantize"})

__all__ = sorted(_EXPORTS) + ["__version__", "errors"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name], __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in {"errors", "metrics", "targets", "blocks", "compress", "export", "runtime", "zoo", "report"}:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'edgedeploy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
