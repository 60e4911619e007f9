"""Early exits that really stop early: split any backbone into stages (torch.fx), train exit heads, calibrate
thresholds, predict with batch compaction, and deploy one ONNX / OpenVINO model per stage with a driver.

Names load lazily so the deployed driver (``runner``, numpy + runtime only) imports without torch.
"""
from __future__ import annotations

from ..._lazy import lazy_exports

_EXPORTS = {
    "add_early_exits": ".model", "EarlyExitModel": ".model",
    "ExitHead": ".heads", "HEADS": ".heads",
    "train_exits": ".train", "ExitTrainConfig": ".train", "ExitTrainResult": ".train", "exit_accuracies": ".train",
    "calibrate_thresholds": ".calibrate", "ThresholdConfig": ".calibrate", "ExitCalibration": ".calibrate",
    "SplitStats": ".calibrate",
    "ExitPrediction": ".decide", "ExitDecision": ".decide",
    "export_staged": ".export", "StagedExportConfig": ".export", "StagedExport": ".export",
    "StagedRunner": ".runner",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
