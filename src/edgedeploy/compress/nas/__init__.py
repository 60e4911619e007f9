"""Hardware-aware neural architecture search on Optuna (``edgedeploy nas ...``).

``nas(NasConfig(...), out=DIR)`` searches a space of edgedeploy's hardware-aware blocks for the Pareto front of
accuracy, latency (measured on a host runtime or predicted for a target), MACs, params, traffic and energy,
pruning candidates that break hard constraints before any training; ``nas_worker`` joins a study on PostgreSQL
from another process or machine. Names load lazily (torch, Optuna and the exporters only when used).
"""
from __future__ import annotations

from ..._lazy import lazy_exports

_EXPORTS = {
    "nas": ".api", "nas_worker": ".api", "load_chosen": ".outputs", "build_chosen": ".outputs",
    "NasConfig": ".config", "Constraints": ".config", "load_config": ".config", "config_from_dict": ".config",
    "OBJECTIVES": ".config",
    "SearchSpace": ".space", "StageSpace": ".space", "Arch": ".space", "StageArch": ".space", "load_space": ".space",
    "BLOCKS": ".space",
    "build_model": ".build", "NasNet": ".build",
    "NasResult": ".result", "TrialRow": ".result",
    "Evaluator": ".objectives", "Evaluation": ".objectives",
    "naswot": ".train", "TaskData": ".train",
    "measure_latency": ".predictor", "predict_latency": ".predictor", "calibrate_predictor": ".predictor",
    "PredictorConfig": ".predictor", "PredictorReport": ".predictor",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
