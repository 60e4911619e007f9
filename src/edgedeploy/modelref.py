"""Resolve a MODEL reference: ``package.module:factory``, a zoo name, or a model file path."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from .errors import ModelLoadError, ShapeError

MODEL_FILE_SUFFIXES = (".onnx", ".xml", ".blob")


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``1x3x224x224`` (or ``1,3,224,224``) into a shape tuple."""
    parts = text.lower().replace(",", "x").replace("×", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ShapeError(f"cannot parse input shape {text!r}: write it as NxCxHxW, e.g. 1x3x224x224") from None
    if not shape or any(d <= 0 for d in shape):
        raise ShapeError(f"input shape {text!r} has a zero or negative dimension; every dimension must be >= 1")
    return shape


def load_model(ref: str, **kwargs: Any) -> Any:
    """Return an ``nn.Module`` (in eval mode) for a factory path or zoo name, or a Path for a model file."""
    path = Path(ref)
    if path.suffix.lower() in MODEL_FILE_SUFFIXES:
        if not path.is_file():
            raise ModelLoadError(f"model file {ref} does not exist; check the path")
        return path
    if ":" in ref:
        return _from_factory(ref, **kwargs)
    return _from_zoo(ref, **kwargs)


def _from_factory(ref: str, **kwargs: Any) -> Any:
    import torch

    module_name, _, attr = ref.partition(":")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))     # so `mypkg.models:build` works from a project folder
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's module
        raise ModelLoadError(f"cannot import module {module_name!r} for model {ref!r}: {exc}; "
                             "check the module path and that it is importable from the current folder") from exc
    factory = getattr(module, attr, None)
    if factory is None:
        raise ModelLoadError(f"module {module_name!r} has no attribute {attr!r}; "
                             f"MODEL must be package.module:factory")
    try:
        model = factory(**kwargs) if callable(factory) and not isinstance(factory, torch.nn.Module) else factory
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"factory {ref} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"{ref} returned {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def _from_zoo(name: str, **kwargs: Any) -> Any:
    from . import zoo

    create = getattr(zoo, "create", None)
    names = list(getattr(zoo, "available", lambda: [])())
    if create is None or name not in names:
        raise ModelLoadError(f"unknown model {name!r}: give package.module:factory, a .onnx/.xml file, "
                             f"or a zoo name ({', '.join(names) or 'none registered'})")
    return create(name, **kwargs).eval()
