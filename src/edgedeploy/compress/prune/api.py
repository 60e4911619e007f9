"""prune(): validate, pick the granularity backend, run the (iterative) schedule, and report."""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError, ShapeError
from . import layers as _layers, sparse as _sparse, structured as _structured  # noqa: F401  (register backends)
from ._cost import count_macs, count_nonzero, count_params, dense_bytes, sparse_bytes
from .base import PruneContext, backend_for, output_layers, output_shapes, weighted_layers
from .config import PruneConfig, resolve_names
from .importance import check_criterion
from .report import PruneReport, PruneResult

FineTune = Callable[[nn.Module, int], Any]


def prune(model: nn.Module, config: PruneConfig | None = None, example_inputs: Any = None, *,
          data: Iterable[Any] | None = None, fine_tune: FineTune | None = None,
          eval_fn: Callable[[nn.Module], float] | None = None, loss_fn: Callable[..., torch.Tensor] | None = None,
          progress: bool = True, inplace: bool = False) -> PruneResult:
    """Prune a copy of ``model`` at the configured granularity; returns the pruned model and a PruneReport.

    ``data`` ((x, y) batches) feeds gradient criteria (taylor) and layer scoring; ``fine_tune(model, step)``
    runs after every pruning step of the iterative schedule; ``eval_fn(model) -> metric`` (higher is
    better) ranks blocks for criterion "measured".
    """
    config = config or PruneConfig()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"prune() needs a torch.nn.Module, got {type(model).__name__}")
    if example_inputs is None:
        raise ShapeError("prune() needs example_inputs (a tensor or tuple the model accepts) to trace the graph")
    check_criterion(config.criterion, config.granularity)
    work = model if inplace else copy.deepcopy(model)
    work.eval()
    ignored = resolve_names(work, config.ignored, "ignored")
    resolve_names(work, config.targets, "target")
    if config.granularity in ("channel", "filter"):
        ignored += _structured_ignores(work, config, example_inputs)
    shapes_before = output_shapes(work, example_inputs)
    params0, macs0, size0 = count_params(work), count_macs(work, example_inputs), dense_bytes(work)

    backend = backend_for(config.granularity)(work, config, PruneContext(example_inputs, ignored, data, loss_fn, eval_fn))
    _schedule(backend, config, fine_tune, progress)
    pruned = backend.finish().eval()

    shapes_after = output_shapes(pruned, example_inputs, pruned=True)
    if shapes_after != shapes_before:
        raise ConfigError(f"pruning changed the model's output shapes {shapes_before} -> {shapes_after}; "
                          "add the output layer(s) to PruneConfig.ignored")
    rows, removed, notes = backend.changes()
    saved = getattr(backend, "effective_macs_saved", None)
    macs1 = count_macs(pruned, example_inputs)
    report = PruneReport(
        granularity=config.granularity, scope=config.scope, criterion=config.criterion, amount=config.amount,
        layers=rows, params_before=params0, params_after=count_params(pruned), nonzero_after=count_nonzero(pruned),
        macs_before=macs0, macs_after=macs1, size_bytes_before=size0, size_bytes_after=dense_bytes(pruned),
        sparse_size_bytes=sparse_bytes(pruned), removed=removed,
        effective_macs=None if saved is None else macs1 - saved, steps=config.steps, notes=notes,
    )
    return PruneResult(pruned, report)


def _structured_ignores(model: nn.Module, config: PruneConfig, example_inputs: Any) -> list[nn.Module]:
    """Output layers (their width is the model's output) and, with targets, every layer outside them."""
    extra = output_layers(model, example_inputs) if config.ignore_output_layers else []
    extra += _structured.fixed_width_layers(model)
    if config.targets:
        inside = [s for t in resolve_names(model, config.targets, "target") for s in t.modules()]
        extra += [m for _, m in weighted_layers(model, []) if not any(m is s for s in inside)]
    return extra


def _schedule(backend: Any, config: PruneConfig, fine_tune: FineTune | None, progress: bool) -> None:
    """prune -> fine-tune -> prune ... over ``config.steps`` steps, with a progress bar."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]prune[/] {task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), disable=not progress, transient=True) as bar:
        task = bar.add_task(f"{config.granularity} {config.scope} {config.amount:g}", total=config.steps)
        for step in range(1, config.steps + 1):
            backend.step(step / config.steps)
            if fine_tune is not None:
                backend.model.train()
                fine_tune(backend.model, step)
                backend.model.eval()
            bar.advance(task)
