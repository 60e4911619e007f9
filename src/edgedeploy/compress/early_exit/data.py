"""Labelled data for early exits, read through the shared adapter (``edgedeploy.data``) under its role names."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from ...data import batches
from ...errors import CalibrationError


def as_xy(data: Any, role: str) -> tuple[torch.Tensor, torch.Tensor]:
    """All of ``data`` as one (inputs, integer labels) pair; ``role`` is train, calibration or evaluation."""
    got = batches(data, role, batch_size=4096)
    if any(b.labels is None for b in got):
        raise CalibrationError(f"{role} data for early exits needs integer labels: pass an (x, y) pair, a list of "
                               "(x, y) batches or a DataLoader yielding them")
    x = torch.from_numpy(np.concatenate([b.inputs[0] for b in got]).astype(np.float32, copy=False))
    y = torch.from_numpy(np.concatenate([b.labels for b in got]).astype(np.int64, copy=False))  # type: ignore[misc]
    return x, y


def train_batches(data: Any, batch_size: int, seed: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (x, y) batches: an (x, y) pair or splits object shuffled with ``seed``; a list of batches or a
    DataLoader read as it comes (so its own shuffling and augmentation apply)."""
    pair_like = (isinstance(data, (tuple, list)) and len(data) == 2 and hasattr(data[0], "shape")) \
        or hasattr(data, "shape") or (hasattr(data, "train") and hasattr(data, "test"))
    if pair_like:
        x, y = as_xy(data, "train")
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        return [(x[idx[i:i + batch_size]], y[idx[i:i + batch_size]]) for i in range(0, len(x), batch_size)]
    out = []
    for b in batches(data, "train", batch_size):
        if b.labels is None:
            raise CalibrationError("train_data batches need integer labels: yield (x, y) pairs")
        out.append((torch.from_numpy(b.inputs[0]).float(), torch.from_numpy(b.labels).long()))
    return out
