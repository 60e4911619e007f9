"""Helpers shared by exporters: artifact names, source hashing, torch reference runs, varied parity inputs."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import publish, sha256_file, staging  # noqa: F401  (re-exported for the exporters)
from ..errors import ConfigError, ModelRunError, user_code
from ..data import as_tensors  # noqa: F401  (re-exported for the exporters)
from ..frames import varied_inputs  # noqa: F401  (re-exported for the exporters)
from ..runtime.torch_rt import flatten_outputs

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$")


def safe_name(name: str, what: str = "name") -> str:
    """An artifact base name that stays inside the output folder (no '/', no '..', no leading dot)."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ConfigError(f"{what} {name!r} is not a plain file name: use letters, digits, '_', '-', '.' "
                          "(no '/', no '..', not starting with '.')")
    return name


def default_name(model: Any) -> str:
    """A file-safe base name for a model: its class name, lower case."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", type(model).__name__.lower()) or "model"


def torch_outputs(model: Any, inputs: Sequence[Any]) -> list[np.ndarray]:
    """Run ``model`` once (inference mode) and flatten its outputs to numpy; non-tensor outputs are refused."""
    import torch

    try:
        with torch.inference_mode(), user_code(f"{type(model).__name__}.forward"):
            out = model(*inputs)
    except ModelRunError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's forward pass
        shapes = ", ".join(f"{tuple(x.shape)}" for x in inputs)
        raise ModelRunError(f"{type(model).__name__}.forward failed on example inputs {shapes}: "
                            f"{type(exc).__name__}: {exc}; pass example_inputs shaped like the real input") from exc
    flat = flatten_outputs(out)
    bad = [type(t).__name__ for t in flat if not isinstance(t, torch.Tensor)]
    if bad or not flat:
        raise ModelRunError(f"{type(model).__name__}.forward returned {bad[0] if bad else 'nothing'}"
                            f"{' among its outputs' if len(flat) > 1 else ''}; an exported model must return "
                            "tensors (or tuples/lists/dicts of tensors)")
    return [t.detach().cpu().numpy() for t in flat]


def source_hash(model_or_path: Any) -> str:
    """SHA-256 of a model file, or of an nn.Module's state dict (names, shapes and bytes)."""
    if isinstance(model_or_path, (str, Path)):
        return sha256_file(model_or_path)
    h = hashlib.sha256()
    for k, v in sorted(model_or_path.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def default_names(prefix: str, n: int) -> list[str]:
    """``prefix`` for one tensor, ``prefix0..`` for several."""
    return [prefix] if n == 1 else [f"{prefix}{i}" for i in range(n)]
