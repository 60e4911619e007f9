"""edgedeploy.runtime: one Session interface over torch, ONNX Runtime and OpenVINO, and benchmark().

Backends live in ``*_rt.py`` files registered with ``@register_runtime``; see ``base.py``.
"""
from __future__ import annotations

from .api import BenchConfig, BenchResult, benchmark, benchmark_matrix, load
from .base import Session, TensorInfo, available_runtimes, get_runtime, register_runtime, runtime_for

__all__ = ["BenchConfig", "BenchResult", "Session", "benchmark_matrix", "TensorInfo", "available_runtimes", "benchmark", "get_runtime", "load",
           "register_runtime", "runtime_for"]
