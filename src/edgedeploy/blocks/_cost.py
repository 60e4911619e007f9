"""MACs/params of a module at an input shape through edgedeploy's profiler (thop conventions by default)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cost:
    """MACs and parameter count of one module at one input shape."""

    macs: int
    params: int


def as_shape(shape: Any, where: str) -> tuple[int, ...]:
    """Normalize a shape given as a tuple/list of ints or a string like '1x3x224x224'; ShapeError otherwise."""
    from ..errors import ShapeError
    from ..shapes import parse_shape

    if isinstance(shape, str):
        return parse_shape(shape)
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        dims = ()
    if not dims or any(d < 1 for d in dims):
        raise ShapeError(f"{where}: input shape {shape!r} is not a tuple of positive ints; pass e.g. (1, 3, 224, 224)")
    return dims


def run_checked(model: Any, x: Any, where: str) -> Any:
    """model(x) under no_grad; a failing forward becomes a ModelRunError naming the input shape."""
    import torch

    from ..errors import ModelRunError

    try:
        with torch.no_grad():
            return model(x)
    except Exception as exc:  # noqa: BLE001 - the user's forward failed at this shape
        shape = "x".join(map(str, x.shape))
        raise ModelRunError(f"{where}: {type(model).__name__} failed on input {shape}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}; pass the input shape the model expects"
                            ) from exc


def cost(module: Any, shape: tuple[int, ...], rules: str = "thop") -> Cost:
    """Count MACs (``rules``: 'thop' or 'standard') and parameters of ``module`` on a zero input of ``shape``."""
    from ..metrics.counting import MacRules
    from ..metrics.profile import ProfileConfig, profile

    prof = profile(module, tuple(int(d) for d in shape), config=ProfileConfig(rules=MacRules.named(rules)))
    return Cost(int(prof.macs), int(prof.params))
