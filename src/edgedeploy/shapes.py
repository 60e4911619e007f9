"""Input shapes written by users (``1x3x224x224``) parsed and checked: positive, and not absurdly large."""
from __future__ import annotations

import math
from typing import Any

from .errors import ShapeError

#: largest input a shape may describe (elements); beyond it a typo such as 1x3x224224x224 is refused
MAX_INPUT_ELEMENTS = 1 << 28


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``1x3x224x224`` (or ``1,3,224,224``) into a shape tuple."""
    parts = str(text).lower().replace(",", "x").replace("×", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ShapeError(f"cannot parse input shape {text!r}: write it as NxCxHxW, e.g. 1x3x224x224 (a text encoder: "
                         "BATCHxSEQUENCE, e.g. 1x128)") from None
    return check_shape(shape, repr(text))


def check_shape(shape: Any, what: str = "input shape") -> tuple[int, ...]:
    """Validate a shape: positive integers, at most ``MAX_INPUT_ELEMENTS`` elements in all."""
    if not isinstance(shape, (tuple, list)) or not shape or \
            not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise ShapeError(f"{what} {shape!r} must be a non-empty tuple of integers, e.g. (1, 3, 224, 224)")
    if any(d <= 0 for d in shape):
        raise ShapeError(f"{what} {tuple(shape)} has a zero or negative dimension; every dimension must be >= 1")
    if math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise ShapeError(f"{what} {'x'.join(map(str, shape))} has {math.prod(shape):,} elements (over "
                         f"{MAX_INPUT_ELEMENTS:,}, {4 * math.prod(shape) / 1e9:.0f} GB as float32); check for a typo")
    return tuple(shape)


def fill_dims(given: tuple[int, ...], dims: Any, what: str) -> tuple[int, ...]:
    """``given`` (an --input shape) when it has ``dims``'s rank and agrees with every fixed dim (None = dynamic);
    otherwise a ShapeError naming ``what`` (e.g. "model.onnx's input 'x'")."""
    dims = tuple(dims)
    if len(given) != len(dims) or any(d is not None and d != g for d, g in zip(dims, given)):
        raise ShapeError(f"--input {'x'.join(map(str, given))} does not match {what} "
                         f"{'x'.join('?' if d is None else str(d) for d in dims)}; give its shape, filling only the "
                         "dynamic dims")
    return tuple(given)
