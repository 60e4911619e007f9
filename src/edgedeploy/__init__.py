"""edgedeploy: measure, compress, export and verify PyTorch models for edge devices.

The public API is re-exported lazily so ``import edgedeploy`` stays cheap: heavy
libraries (torch, onnx, onnxruntime, openvino, nncf) load only when a function needs them.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (relative to this package), in the order of the flow
_EXPORTS: dict[str, str] = {
    # what a model costs, and does it fit the device
    "profile": ".metrics.profile", "ProfileConfig": ".metrics.profile", "Profile": ".metrics.types",
    "LayerStats": ".metrics.types", "MacRules": ".metrics.counting", "EnergyConfig": ".metrics.energy",
    "measure": ".metrics.latency", "LatencyStats": ".metrics.latency",
    "Target": ".targets.target", "available_targets": ".targets.target", "check": ".targets.check",
    "CheckReport": ".targets.report",
    # models and data
    "load_model": ".modelref", "save_model_file": ".modelfile",
    # hardware-aware blocks
    "reparameterize": ".blocks.reparam", "ReparamConfig": ".blocks.reparam", "swap": ".blocks.swap",
    "SwapResult": ".blocks.swap",
    # runtimes
    "load": ".runtime", "benchmark": ".runtime", "Session": ".runtime", "benchmark_matrix": ".runtime",
    "BenchConfig": ".runtime",
    # exporters, each verified
    "export_onnx": ".export.onnx", "OnnxConfig": ".export.onnx",
    "export_openvino": ".export.openvino", "OpenVinoConfig": ".export.openvino",
    "export_blob": ".export.blob", "BlobConfig": ".export.blob", "ExportResult": ".export.result",
    "build_depthai_pipeline": ".export.depthai", "DepthAIPipeline": ".export.depthai",
    "bake_preprocessing": ".export.onnx_preprocess", "Preprocess": ".export.onnx_preprocess",
    "keep_fp32_islands": ".export.fp32_islands", "IslandsConfig": ".export.fp32_islands",
    "split_model": ".export.split", "SplitConfig": ".export.split",
    "QnnConfig": ".export.qnn", "compile_qnn_context": ".export.qnn",
    # compression
    "prune": ".compress.prune", "PruneConfig": ".compress.prune", "PruneResult": ".compress.prune",
    "PruneReport": ".compress.prune",
    "distill": ".compress.distill", "DistillConfig": ".compress.distill", "DistillResult": ".compress.distill",
    "quantize": ".compress.quantize", "QuantConfig": ".compress.quantize",
    "fp16_rounding": ".compress.quantize.fp16_training",
    "export_qnn": ".compress.quantize.qnn", "qnn_unsupported_ops": ".compress.quantize.qnn",
    # whole flows: multi-format export, recipes, the report
    "export": ".run.export", "ExportConfig": ".run.export",
    "run_recipe": ".run.engine", "load_recipe": ".run.recipe",
    "render_report": ".report", "render_graph_svg": ".report",
    "EdgeDeployError": ".errors",
}

__all__ = sorted(_EXPORTS) + ["__version__", "errors"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(_EXPORTS[name], __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in {"errors", "data", "metrics", "targets", "blocks", "compress", "export", "runtime", "zoo", "run",
                "report"}:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'edgedeploy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
