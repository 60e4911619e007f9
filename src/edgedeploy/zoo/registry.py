"""A tiny model registry in the style of timm's ``@register_model`` / ``create_model``."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ModelLoadError

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_model(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a model factory under ``name``."""
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"zoo model {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn
    return deco


def available() -> list[str]:
    """Names of every registered model."""
    return sorted(_REGISTRY)


def create(name: str, **kwargs: Any) -> Any:
    """Build the named model (kwargs go to its factory)."""
    if name not in _REGISTRY:
        raise ModelLoadError(f"unknown zoo model {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name](**kwargs)
