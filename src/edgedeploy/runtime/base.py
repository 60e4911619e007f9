"""One Session interface over every runtime, and the decorator registry of backends.

A backend is a small ``Session`` subclass in its own ``runtime/<name>_rt.py`` file, decorated with
``@register_runtime("<name>")``; the registry imports every ``*_rt`` module on first use, so adding a
backend touches that one file. Backends import their heavy library inside their methods.
"""
from __future__ import annotations

import abc
import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ..errors import ArtifactError, ConfigError, ShapeError


class TensorInfo(NamedTuple):
    """Name, shape (``None`` for a dynamic dimension; ``None`` overall when unknown) and numpy dtype name."""

    name: str
    shape: tuple[int | None, ...] | None
    dtype: str | None

    def describe(self) -> str:
        """``name: float32[1x3x224x224]`` (``?`` for dynamic or unknown dims)."""
        dims = "?" if self.shape is None else "x".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype or '?'}[{dims}]"


class Session(abc.ABC):
    """A loaded model on one runtime: ``run(inputs) -> list[np.ndarray]``, with ``inputs``/``outputs`` info."""

    name: ClassVar[str] = ""
    #: file suffixes this backend reads (lower case); ``"module"`` means a torch ``nn.Module``
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: among backends reading the same suffix, the highest priority is chosen when no runtime is named
    priority: ClassVar[int] = 0
    #: precision the backend computes float graphs in (parity tolerances follow it)
    float_precision: ClassVar[str] = "fp32"

    @classmethod
    def claims(cls, path: Path) -> bool:
        """True when this backend must open ``path`` whatever the priorities (e.g. a compiled context model)."""
        return False

    def __init__(self, source: Any, threads: int | None = None, **options: Any) -> None:
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads must be a positive integer or None (got {threads!r})")
        self.source = source
        self.threads = threads
        self.options = dict(options)
        self._open(source, threads, self.options)
        self.inputs, self.outputs = self._describe()

    # ---- what a backend implements -------------------------------------------------------------
    @abc.abstractmethod
    def _open(self, source: Any, threads: int | None, options: dict[str, Any]) -> None:
        """Load ``source`` with the given thread count; unknown options raise ConfigError."""

    @abc.abstractmethod
    def _describe(self) -> tuple[list[TensorInfo], list[TensorInfo]]:
        """Return (inputs, outputs) info."""

    @abc.abstractmethod
    def _infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Run already validated numpy inputs (in ``inputs`` order) and return numpy outputs."""

    # ---- shared behaviour ----------------------------------------------------------------------
    def run(self, inputs: Any) -> list[np.ndarray]:
        """Run the model on one array/tensor, a sequence of them, or a dict by input name."""
        return self._infer(self.prepare(inputs))

    def run_rows(self, array: Any, output: int = 0) -> np.ndarray:
        """Output ``output`` for every row of a single-input ``array``, run one row at a time (exports have a
        fixed batch of 1), stacked in row order."""
        rows = np.asarray(array)
        if rows.ndim == 0 or len(rows) == 0:
            raise ShapeError(f"run_rows needs a non-empty batch of inputs (got shape {rows.shape})")
        return np.concatenate([np.asarray(self.run(rows[i:i + 1])[output]) for i in range(len(rows))])

    def prepare(self, inputs: Any) -> list[np.ndarray]:
        """Convert inputs to numpy in ``inputs`` order and check their count, shape and dtype."""
        arrays = _as_list(inputs, self.inputs)
        if self.inputs and len(arrays) != len(self.inputs):
            want = ", ".join(i.describe() for i in self.inputs)
            raise ShapeError(f"{self.name} session expects {len(self.inputs)} input(s) ({want}) but got {len(arrays)}")
        for info, arr in zip(self.inputs, arrays):
            _check(info, arr, self.name)
        return arrays

    def example_inputs(self, seed: int = 0, shape: tuple[int, ...] | None = None,
                       strict: bool = False) -> list[np.ndarray]:
        """Seeded random inputs matching ``inputs``; for benchmarking. ``shape`` sets the first input's shape (its
        fixed dims must agree); without it dynamic dims are 1 (``strict``: only the batch; others are an error)."""
        rng = np.random.default_rng(seed)
        out = []
        for k, info in enumerate(self.inputs or [TensorInfo("input0", None, None)]):
            if info.shape is None or info.dtype is None:
                raise ShapeError(f"input {info.name!r} of this {self.name} session has an unknown shape or dtype; "
                                 "pass inputs explicitly (or load a torch model with example_inputs=...)")
            shape_k = _resolve(info, shape if k == 0 else None, self.name, strict)
            dtype = np.dtype(info.dtype)
            if dtype.kind in "ui":
                out.append(rng.integers(0, 256 if dtype.kind == "u" else 128, size=shape_k).astype(dtype))
            elif dtype.kind == "b":
                out.append(rng.integers(0, 2, size=shape_k).astype(bool))
            else:
                out.append(rng.standard_normal(shape_k).astype(dtype))
        return out

    def reopen(self, threads: int | None) -> Session:
        """A new session on the same source and options with another thread count."""
        return type(self)(self.source, threads=threads, **self.options)

    def __repr__(self) -> str:
        ins = ", ".join(i.describe() for i in self.inputs)
        outs = ", ".join(o.describe() for o in self.outputs)
        return f"<{type(self).__name__} runtime={self.name} threads={self.threads} inputs=[{ins}] outputs=[{outs}]>"


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):          # torch.Tensor without importing torch
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _as_list(inputs: Any, infos: Sequence[TensorInfo]) -> list[np.ndarray]:
    if isinstance(inputs, Mapping):
        names = [i.name for i in infos]
        unknown = sorted(set(inputs) - set(names))
        missing = [n for n in names if n not in inputs]
        if unknown or missing:
            raise ShapeError(f"inputs by name do not match the model: unknown {unknown}, missing {missing}; "
                             f"the model's inputs are {names}")
        return [_as_numpy(inputs[n]) for n in names]
    if isinstance(inputs, (list, tuple)):
        return [_as_numpy(x) for x in inputs]
    return [_as_numpy(inputs)]


def _check(info: TensorInfo, arr: np.ndarray, runtime: str) -> None:
    if info.dtype is not None and arr.dtype != np.dtype(info.dtype):
        raise ShapeError(f"input {info.name!r} of the {runtime} session expects dtype {info.dtype} but got "
                         f"{arr.dtype} (shape {tuple(arr.shape)}); convert it, e.g. x.astype(np.{info.dtype})")
    if info.shape is None:
        return
    ok = arr.ndim == len(info.shape) and all(d is None or d == g for d, g in zip(info.shape, arr.shape))
    if not ok:
        want = "x".join("?" if d is None else str(d) for d in info.shape)
        got = "x".join(str(d) for d in arr.shape)
        raise ShapeError(f"input {info.name!r} of the {runtime} session expects shape {want} but got {got}; "
                         "resize or re-export the model for this shape")


# ---- registry ------------------------------------------------------------------------------------
_REGISTRY: dict[str, type[Session]] = {}
_discovered = False


def register_runtime(name: str) -> Callable[[type[Session]], type[Session]]:
    """Class decorator registering a Session backend under ``name``."""

    def deco(cls: type[Session]) -> type[Session]:
        if not (isinstance(cls, type) and issubclass(cls, Session)):
            raise TypeError(f"@register_runtime({name!r}) must decorate a Session subclass, not {cls!r}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = __name__.rpartition(".")[0]
    for mod in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if mod.name.endswith("_rt"):
            importlib.import_module(f"{package}.{mod.name}")


def available_runtimes() -> list[str]:
    """Names of every registered runtime backend."""
    _discover()
    return sorted(_REGISTRY)


def get_runtime(name: str) -> type[Session]:
    """The Session class registered as ``name`` (ConfigError listing valid names otherwise)."""
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown runtime {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}") from None


def runtime_for(source: Any) -> type[Session]:
    """Pick the backend for a model file (by suffix) or an ``nn.Module``."""
    _discover()
    if isinstance(source, (str, Path)):
        suffix = Path(source).suffix.lower()
    elif hasattr(source, "SerializeToString") and hasattr(source, "graph"):
        suffix = ".onnx"                    # an onnx.ModelProto in memory
    elif hasattr(source, "forward") and hasattr(source, "parameters"):
        suffix = "module"
    else:
        raise ConfigError(f"cannot load a {type(source).__name__}: give a .onnx/.xml path or a torch nn.Module")
    candidates = [c for c in _REGISTRY.values() if suffix in c.suffixes]
    if not candidates:
        known = sorted({s for c in _REGISTRY.values() for s in c.suffixes if s != "module"})
        raise ArtifactError(f"no runtime reads {suffix or 'files without a suffix'!r} files ({source}); "
                            f"known model files: {', '.join(known)}, or pass a torch nn.Module")
    if isinstance(source, (str, Path)):
        claimed = [c for c in candidates if c.claims(Path(source))]
        if claimed:
            return max(claimed, key=lambda c: c.priority)
    return max(candidates, key=lambda c: c.priority)


def _resolve(info: TensorInfo, shape: tuple[int, ...] | None, runtime: str, strict: bool) -> tuple[int, ...]:
    """The concrete shape to feed ``info``: ``shape`` checked against its fixed dims, or its own with batch 1."""
    from ..shapes import fill_dims

    dims = tuple(info.shape or ())
    if shape is not None:
        return fill_dims(shape, dims, f"the {runtime} model's input {info.name!r}")
    if strict and any(d is None for d in dims[1:]):
        raise ShapeError(f"the {runtime} model's input {info.describe()} has dynamic dims; give the shape to time "
                         "with --input (e.g. 1x3x224x224)")
    return tuple(1 if d is None else d for d in dims)
