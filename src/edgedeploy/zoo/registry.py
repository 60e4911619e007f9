"""A tiny model registry in the style of timm's ``@register_model`` / ``create_model``."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ModelLoadError

_REGISTRY: dict[str, Callable[..., Any]] = {}
_TASKS: dict[str, dict[str, Callable[..., Any]]] = {}


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


def has_weights(name: str) -> bool:
    """True when the named model can be built trained (its factory takes ``pretrained``)."""
    import inspect

    return name in _REGISTRY and "pretrained" in inspect.signature(_REGISTRY[name]).parameters


def create(name: str, **kwargs: Any) -> Any:
    """Build the named model (kwargs go to its factory)."""
    if name not in _REGISTRY:
        raise ModelLoadError(f"unknown zoo model {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name](**kwargs)


def register_task(name: str, trainer: Callable[..., Any] | None = None,
                  evaluator: Callable[..., Any] | None = None, samples: Callable[..., Any] | None = None,
                  extras: Callable[..., Any] | None = None) -> None:
    """Attach hooks to the zoo model ``name`` (what a recipe's train/evaluate steps call): a training loop
    ``trainer(model, data, **options) -> history``, an ``evaluator(model_or_artifact, data) -> {metric: value}``,
    ``samples(model, folder, data) -> [{"file": PNG/JPEG name, "caption": text}]`` (pictures of the model at work)
    and ``extras(model, data) -> {...}`` (JSON-ready results the report's section for the task draws, e.g. an
    outside reference scored on the same data): everything a report shows is computed by the step, not the report."""
    hooks = (("trainer", trainer), ("evaluator", evaluator), ("samples", samples), ("extras", extras))
    _TASKS.setdefault(name, {}).update({k: v for k, v in hooks if v})


def task(name: str, what: str) -> Callable[..., Any] | None:
    """The registered ``trainer``, ``evaluator``, ``samples`` or ``extras`` of zoo model ``name`` (None if none)."""
    return _TASKS.get(name, {}).get(what)
