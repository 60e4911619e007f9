"""Value ranges of a model's activations on real-looking inputs: does it fit a precision (e.g. fp16's +-65504)?"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ModelRunError, user_code

#: largest finite float16 magnitude
FP16_MAX = 65504.0


@dataclass(frozen=True)
class LayerRange:
    """The largest magnitude one leaf layer produced over the inputs tried."""

    name: str
    op: str
    max_abs: float


def activation_ranges(model: Any, inputs: Sequence[tuple[Any, ...]]) -> list[LayerRange]:
    """Max |value| each leaf module outputs over several input sets (real execution, largest first)."""
    import torch

    peak: dict[str, LayerRange] = {}
    names = {m: n for n, m in model.named_modules()}

    def hook(mod: Any, _args: Any, out: Any) -> None:
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel():
                value = float(t.detach().abs().max())
                key = names.get(mod) or type(mod).__name__
                if key not in peak or not value <= peak[key].max_abs:
                    peak[key] = LayerRange(key, type(mod).__name__, value)

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode(), user_code(f"{type(model).__name__}.forward"):
            for xs in inputs:
                out = model(*xs)
                hook(model, None, out)          # the model's own outputs count too
    except ModelRunError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's forward pass
        raise ModelRunError(f"{type(model).__name__}.forward failed while measuring value ranges: "
                            f"{type(exc).__name__}: {exc}") from exc
    finally:
        for h in handles:
            h.remove()
    return sorted(peak.values(), key=lambda r: -r.max_abs if math.isfinite(r.max_abs) else -math.inf)
