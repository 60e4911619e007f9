"""Quantizer backends: small classes registered by a decorator; adding one touches one file.

A backend lives in ``backends/<name>.py`` and is decorated with ``@register_quantizer``; every module in
``backends/`` is imported on first lookup, so a new file is all it takes. Heavy libraries are imported
inside the methods.
"""
from __future__ import annotations

import abc
import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ...errors import ConfigError
from .config import QuantConfig

if TYPE_CHECKING:
    from .qnn_qdq import MixedChoice

Feed = dict[str, np.ndarray]


@dataclass
class Artifact:
    """What a backend produced: the file that runs on its runtime, and the torch module if there is one."""

    path: Path
    module: Any = None
    onnx_path: Path | None = None   # a QDQ/float16 ONNX twin, used for per-layer error when it exists
    notes: tuple[str, ...] = ()     # what the backend chose, for the report
    mixed: MixedChoice | None = None   # qnn mixed precision: which activations went to u16


@dataclass
class Job:
    """Everything a backend needs for one quantization run (already validated by the API)."""

    config: QuantConfig
    fp32_onnx: Path                 # the float model as ONNX (always present)
    module: Any                     # the torch module, or None when the user gave an ONNX file
    calibration: list[Feed]         # validated calibration batches (may be empty outside static modes)
    ignored_nodes: list[str]        # ONNX node names to keep in float
    ignored_modules: list[str]      # torch module paths to keep in float (torch backend)
    train_data: Any                 # (x, y) batches for QAT, or None
    out: Path


class Quantizer(abc.ABC):
    """One quantization toolchain: which modes it supports, how it quantizes, how its artifacts run."""

    name: ClassVar[str] = ""
    modes: ClassVar[tuple[str, ...]] = ()
    #: the edgedeploy.runtime backend that runs this quantizer's artifacts (and its float baseline)
    runtime: ClassVar[str] = "onnxruntime"
    #: modes that need calibration data
    calibrated_modes: ClassVar[tuple[str, ...]] = ("int8-static", "qat")

    def check(self, config: QuantConfig) -> None:
        """Reject options this backend cannot honour (ConfigError naming the option); default accepts all."""

    def baseline(self, fp32_onnx: Path, out: Path) -> Path:
        """The float model as this backend's runtime runs it (default: the ONNX file itself)."""
        return fp32_onnx

    @abc.abstractmethod
    def quantize(self, job: Job) -> Artifact:
        """Quantize ``job`` and write the artifact into ``job.out``."""

    def session(self, path: Path, threads: int | None = None) -> Any:
        """An edgedeploy.runtime Session on this backend's runtime for an artifact (or the baseline)."""
        from ...runtime import load

        return load(path, runtime=self.runtime, threads=threads)


_REGISTRY: dict[str, type[Quantizer]] = {}
_LOADED = False


def register_quantizer(cls: type[Quantizer]) -> type[Quantizer]:
    """Class decorator adding a quantizer backend under ``cls.name``."""
    if not cls.name or not cls.modes:
        raise TypeError(f"{cls.__name__} must set `name` and `modes`")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise TypeError(f"quantizer backend {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    from . import backends

    for info in pkgutil.iter_modules(backends.__path__):
        importlib.import_module(f"{backends.__name__}.{info.name}")
    _LOADED = True


def available_backends() -> dict[str, tuple[str, ...]]:
    """Backend name -> the modes it supports."""
    _load_all()
    return {name: cls.modes for name, cls in sorted(_REGISTRY.items())}


def valid_pairs() -> list[str]:
    """Every valid ``mode/backend`` pair, e.g. ``int8-static/openvino``."""
    return [f"{m}/{b}" for b, modes in available_backends().items() for m in modes]


def get_quantizer(backend: str, mode: str) -> Quantizer:
    """Instantiate the backend for ``mode``, or raise ConfigError listing the valid pairs."""
    backends = available_backends()
    if backend not in backends:
        raise ConfigError(f"unknown quantizer backend {backend!r}; choose one of {', '.join(backends)} "
                          f"(valid mode/backend pairs: {', '.join(valid_pairs())})")
    if mode not in backends[backend]:
        raise ConfigError(f"mode {mode!r} is not available with backend {backend!r}; "
                          f"valid mode/backend pairs: {', '.join(valid_pairs())}")
    return _REGISTRY[backend]()


def names_of(items: Sequence[Any]) -> str:
    """Comma-joined names, shortened after 25 for error messages."""
    items = list(items)
    more = f", ... ({len(items) - 25} more)" if len(items) > 25 else ""
    return ", ".join(map(str, items[:25])) + more
