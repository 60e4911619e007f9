"""Helpers shared by exporters: staged (all-or-nothing) output, source hashing, torch reference runs."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import ensure_dir, sha256_file
from ..errors import ConfigError, ModelRunError


@contextlib.contextmanager
def staging(out: str | os.PathLike[str]) -> Iterator[Path]:
    """A hidden temp folder inside ``out``, removed afterwards; publish files from it with ``publish``."""
    folder = ensure_dir(out)
    tmp = Path(tempfile.mkdtemp(prefix=".edgedeploy-staging-", dir=folder))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(stage: Path, out: Path, names: Sequence[str]) -> list[Path]:
    """Move finished files from the staging folder into ``out`` (each by an atomic rename)."""
    paths = []
    for n in names:
        dest = Path(out) / n
        os.replace(stage / n, dest)
        paths.append(dest)
    return paths


def as_tensors(example_inputs: Any) -> tuple[Any, ...]:
    """Normalize one tensor/array or a sequence of them to a tuple of torch tensors."""
    import torch

    items = example_inputs if isinstance(example_inputs, (list, tuple)) else (example_inputs,)
    if not items:
        raise ConfigError("example_inputs is empty; pass a tensor (or a tuple of tensors) shaped like the real input")
    out = []
    for i, x in enumerate(items):
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, torch.Tensor):
            raise ConfigError(f"example input {i} is a {type(x).__name__}; pass torch tensors or numpy arrays")
        out.append(x)
    return tuple(out)


def torch_outputs(model: Any, inputs: Sequence[Any]) -> list[np.ndarray]:
    """Run ``model`` once (inference mode) and flatten its outputs to numpy."""
    from ..runtime.torch_rt import _flatten
    import torch

    try:
        with torch.inference_mode():
            out = model(*inputs)
    except Exception as exc:  # noqa: BLE001 - the user's forward pass
        shapes = ", ".join(f"{tuple(x.shape)}" for x in inputs)
        raise ModelRunError(f"{type(model).__name__}.forward failed on example inputs {shapes}: "
                            f"{type(exc).__name__}: {exc}; pass example_inputs shaped like the real input") from exc
    return [t.detach().cpu().numpy() for t in _flatten(out)]


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
