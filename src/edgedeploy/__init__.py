"""edgedeploy: measure, compress, export and verify PyTorch models for edge devices.

The public API is re-exported lazily so ``import edgedeploy`` stays cheap: heavy
libraries (torch, onnx, onnxruntime, openvino, nncf) load only when a function needs them.
"""
from __future__ import annotations

from ._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it (relative to this package), in the order of the flow
_EXPORTS: dict[str, str] = {
    # what a model costs, and does it fit the device
    "profile": ".metrics.profile", "ProfileConfig": ".metrics.profile", "Profile": ".metrics.types",
    "LayerStats": ".metrics.types", "MacRules": ".metrics.counting", "EnergyConfig": ".metrics.energy",
    "measure": ".metrics.latency", "LatencyStats": ".metrics.latency",
    "Target": ".targets.target", "available_targets": ".targets.target", "check": ".targets.check",
    "CheckReport": ".targets.report", "estimate_latency": ".targets.latency", "LatencyEstimate": ".targets.latency",
    "Measurement": ".targets.calibration", "Calibration": ".targets.calibration",
    # models and data
    "load_model": ".modelref", "save_model_file": ".modelfile",
    "load_sentences": ".zoo.sentences", "embedding_fidelity": ".zoo.sentences",
    "EmbeddingFidelity": ".zoo.sentences", "SentenceSet": ".zoo.sentences",
    "recover_encoder": ".zoo.encoder_recovery", "RecoveryConfig": ".zoo.encoder_recovery",
    "EncoderRecovery": ".zoo.encoder_recovery",
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
    "add_early_exits": ".compress.early_exit", "train_exits": ".compress.early_exit",
    "ExitTrainConfig": ".compress.early_exit", "calibrate_thresholds": ".compress.early_exit",
    "ThresholdConfig": ".compress.early_exit", "export_staged": ".compress.early_exit",
    "StagedExportConfig": ".compress.early_exit", "StagedRunner": ".compress.early_exit",
    "apply_mod": ".compress.mod", "MoDConfig": ".compress.mod",
    "nas": ".compress.nas", "nas_worker": ".compress.nas", "NasConfig": ".compress.nas", "NasResult": ".compress.nas",
    "SearchSpace": ".compress.nas", "load_chosen": ".compress.nas", "calibrate_predictor": ".compress.nas",
    "PredictorConfig": ".compress.nas",
    "save_hf_folder": ".compress.prune.hf", "hidden_state_pairs": ".compress.prune.hf",
    "export_qnn": ".compress.quantize.qnn", "qnn_unsupported_ops": ".compress.quantize.qnn",
    # whole flows: multi-format export, recipes, the report
    "export": ".run.export", "ExportConfig": ".run.export",
    "run_recipe": ".run.engine", "load_recipe": ".run.recipe",
    "render_report": ".report", "render_graph_svg": ".report",
    "EdgeDeployError": ".errors",
}

__getattr__, __dir__, _names = lazy_exports(__name__, _EXPORTS, (
    "errors", "data", "metrics", "targets", "blocks", "compress", "export", "runtime", "zoo", "run", "report"))
__all__ = _names + ["__version__", "errors"]
