"""Cost of a model before/after pruning: params, MACs, dense and sparse-storage size."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def as_tuple(example_inputs: Any) -> tuple[Any, ...]:
    """Example inputs as a positional-argument tuple."""
    return tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)


def count_macs(model: nn.Module, example_inputs: Any) -> int:
    """Multiply-accumulates of one forward pass, from the project's profiler."""
    from ...metrics.profile import profile

    args = as_tuple(example_inputs)
    return int(profile(model, args[0] if len(args) == 1 else args).macs)


def count_params(model: nn.Module) -> int:
    """Number of parameters (dense count: zeros included)."""
    return sum(p.numel() for p in model.parameters())


def count_nonzero(model: nn.Module) -> int:
    """Number of non-zero parameter entries."""
    return sum(int(torch.count_nonzero(p.detach())) for p in model.parameters())


def dense_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer stored densely."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def sparse_bytes(model: nn.Module) -> int:
    """Bytes with each tensor stored as non-zero values plus a 1-bit presence map, when that is smaller."""
    total = 0
    for t in model.state_dict().values():
        dense = t.numel() * t.element_size()
        if t.is_floating_point() and t.dim() > 1:
            packed = int(torch.count_nonzero(t)) * t.element_size() + math.ceil(t.numel() / 8)
            total += min(dense, packed)
        else:
            total += dense
    return total
