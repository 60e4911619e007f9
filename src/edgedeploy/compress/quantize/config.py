"""QuantConfig: the one small frozen options object every quantizer backend reads."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ...errors import ConfigError

MODES = ("fp16", "int8-static", "int8-dynamic", "qat")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
QNN_ACTIVATIONS = ("u8", "u16", "mixed")


@dataclass(frozen=True)
class QnnQuantOptions:
    """Options only the ``qnn`` backend reads (Qualcomm HTP QDQ layout)."""

    # u8 | u16 | mixed: u8 with the noisiest activations promoted to u16 until ``accuracy_budget`` is met
    activations: str = "mixed"
    accuracy_budget: float = 0.99       # mixed: top-1 (or rel. L2) agreement with FP32 the mix must reach

    def __post_init__(self) -> None:
        if self.activations not in QNN_ACTIVATIONS:
            raise ConfigError(f"unknown QNN activations {self.activations!r}; choose one of "
                              f"{', '.join(QNN_ACTIVATIONS)}")
        if not 0.0 <= float(self.accuracy_budget) <= 1.0:
            raise ConfigError(f"QNN accuracy_budget is a fraction in [0, 1] (got {self.accuracy_budget})")


@dataclass(frozen=True)
class QuantConfig:
    """What to quantize and how; the defaults pick the fast, accurate settings on x86 CPUs."""

    mode: str = "int8-static"
    backend: str = "onnxruntime"
    # per-output-channel weight scales; None = the backend's default: per-channel for onnxruntime/openvino/torch
    # (per-tensor loses accuracy on BN-folded convs), QNN's per-tensor u8 weights for qnn (True: s8 per-channel)
    per_channel: bool | None = None
    # symmetric int8 activations (True) or asymmetric uint8 (False); None = the backend's fast default
    # (onnxruntime: asymmetric u8 x s8 weights, the VNNI path; openvino/NNCF: symmetric, its PERFORMANCE preset)
    symmetric: bool | None = None
    calibration: str = "minmax"
    # layer names (ONNX node names, or torch module paths such as "stem.0") kept in floating point
    ignored: tuple[str, ...] = ()
    # keep the N most sensitive layers in float, chosen by a per-layer sweep on the calibration data (int8-static
    # and int8-dynamic; dynamic then needs calibration= too). MiniLM-L6 dynamic: keep_float=1 lifts the worst
    # sentence's cosine from 0.988 to 0.991 at x2.8-3.5 vs FP32 (keeping all six FFN down-projections: x1.7-1.85)
    keep_float: int = 0
    # weight grid for the torch backend (2..8); values stay in int8 containers so artifacts run as INT8
    weight_bits: int = 8
    # NNCF's fast bias correction (openvino backend): off by default, it cost 1.6 points top-1 on the digits CNN
    bias_correction: bool = False
    # calibration samples used at most (the rest of the user's data is ignored)
    calibration_samples: int = 300
    # quantization-aware fine-tuning
    qat_epochs: int = 3
    qat_lr: float = 5e-4
    # latency measurement of the before/after artifacts on the backend's runtime
    threads: int = 1
    latency_repeats: int = 30
    opset: int = 17
    seed: int = 0
    qnn: QnnQuantOptions = field(default_factory=QnnQuantOptions)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown quantization mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.calibration not in CALIBRATION_METHODS:
            raise ConfigError(f"unknown calibration method {self.calibration!r}; "
                              f"choose one of {', '.join(CALIBRATION_METHODS)}")
        if isinstance(self.ignored, str):
            object.__setattr__(self, "ignored", (self.ignored,))
        object.__setattr__(self, "ignored", tuple(self.ignored))
        if not 2 <= int(self.weight_bits) <= 8:
            raise ConfigError(f"weight_bits must be between 2 and 8 (got {self.weight_bits})")
        for name in ("calibration_samples", "threads", "latency_repeats"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if int(self.keep_float) < 0:
            raise ConfigError(f"keep_float must be >= 0 layers (got {self.keep_float})")
        if self.keep_float and self.mode not in ("int8-static", "int8-dynamic"):
            raise ConfigError(f"keep_float works with modes int8-static and int8-dynamic (got mode {self.mode!r}); "
                              "use ignored= to keep named layers in float")
        if self.qat_epochs < 0 or self.qat_lr <= 0:
            raise ConfigError(f"qat_epochs must be >= 0 and qat_lr > 0 (got {self.qat_epochs}, {self.qat_lr})")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for manifests and reports)."""
        return asdict(self)
