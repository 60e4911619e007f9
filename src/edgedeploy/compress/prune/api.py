"""prune(): validate, pick the granularity backend, run the (iterative) schedule, honour the amount, report, save."""
from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError, ShapeError
from . import layers as _layers, sparse as _sparse, structured as _structured  # noqa: F401  (register backends)
from . import transformer as _transformer  # noqa: F401  (head, ffn, transformer-layer)
from ._cost import count_macs, count_nonzero, count_params, dense_bytes, sparse_bytes
from .base import PruneContext, backend_for, output_layers, output_shapes, weighted_layers
from .config import TRANSFORMER_GRANULARITIES, PruneConfig, resolve_names
from .importance import check_criterion
from .report import LayerChange, PruneReport, PruneResult

FineTune = Callable[[nn.Module, int], Any]
#: re-prune rounds when coupled channel groups cut a layer more than asked (local scope)
HONOUR_ROUNDS = 3


def prune(model: nn.Module, config: PruneConfig | None = None, example_inputs: Any = None, *,
          train_data: Any = None, fine_tune: FineTune | None = None,
          eval_fn: Callable[[nn.Module], float] | None = None, loss_fn: Callable[..., torch.Tensor] | None = None,
          progress: bool = True, inplace: bool = False, out: str | os.PathLike[str] | None = None,
          source: str | None = None, onnx: bool = True) -> PruneResult:
    """Prune a copy of ``model`` at the configured granularity; returns the pruned model and a PruneReport.

    ``train_data`` ((x, y) batches) feeds gradient criteria (taylor) and layer scoring; ``fine_tune(model, step)``
    runs after every pruning step of the iterative schedule; ``eval_fn(model) -> metric`` (higher is better)
    ranks blocks for criterion "measured". With local channel/filter pruning, no layer loses more than
    ``amount`` (coupled groups that cut a layer twice are re-pruned at a lower ratio; the report says where).
    With ``out``, writes model.pt (weights-only format, rebuilt from ``source``), model.onnx (unless ``onnx=False``)
    and the report, all or nothing.
    """
    config = config or PruneConfig()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"prune() needs a torch.nn.Module, got {type(model).__name__}")
    if example_inputs is None:
        raise ShapeError("prune() needs example_inputs (a tensor or tuple the model accepts) to trace the graph")
    config, routed = _transformer_layers(model, config)
    check_criterion(config.criterion, config.granularity)
    shapes_before = output_shapes(model.eval(), example_inputs)
    params0, macs0, size0 = count_params(model), count_macs(model, example_inputs), dense_bytes(model)
    honour = config.granularity in ("channel", "filter") and config.scope == "local"
    notes: list[str] = []
    for attempt in range(HONOUR_ROUNDS if honour else 1):
        pruned, rows, removed, backend_notes, saved = _run(model, config, example_inputs, train_data, fine_tune,
                                                           eval_fn, loss_fn, progress, inplace and not honour)
        over = _over_pruned(rows, config) if honour else []
        if not over or attempt == HONOUR_ROUNDS - 1:
            break
        config = dataclasses.replace(config, layer_amounts={**(config.layer_amounts or {}), **_corrected(over, config)})
        notes.append(f"round {attempt + 1}: {len(over)} layer(s) were cut more than {config.amount:g} (each sits in "
                     "several coupled channel groups, e.g. a concat or a residual); their groups were re-pruned at "
                     "a lower ratio")
    if over:
        worst = sorted(over, key=lambda c: -c.removed_fraction)[:5]
        notes.append("WARNING cut more than asked: " + ", ".join(f"{c.name} {100 * c.removed_fraction:.0f}%"
                                                                  for c in worst) + " (coupled channel groups); add "
                     "them to PruneConfig.ignored to keep them whole")
    shapes_after = output_shapes(pruned, example_inputs, pruned=True)
    if shapes_after != shapes_before:
        raise ConfigError(f"pruning changed the model's output shapes {shapes_before} -> {shapes_after}; "
                          "add the output layer(s) to PruneConfig.ignored")
    macs1 = count_macs(pruned, example_inputs)
    report = PruneReport(
        granularity=config.granularity, scope=config.scope, criterion=config.criterion, amount=config.amount,
        layers=rows, params_before=params0, params_after=count_params(pruned), nonzero_after=count_nonzero(pruned),
        macs_before=macs0, macs_after=macs1, size_bytes_before=size0, size_bytes_after=dense_bytes(pruned),
        sparse_size_bytes=sparse_bytes(pruned), removed=removed,
        effective_macs=None if saved is None else macs1 - saved, steps=config.steps, notes=backend_notes + notes,
    )
    if routed:
        report = dataclasses.replace(report, notes=[routed, *report.notes])
    result = PruneResult(pruned, report)
    if out is not None and config.granularity in TRANSFORMER_GRANULARITIES:
        from .hf import save_hf_folder

        save_hf_folder(pruned, example_inputs, out, {"config": config.to_dict(), "source": source}, report, onnx=onnx)
    elif out is not None:
        save_compressed(pruned, example_inputs, out, "prune", source, {"config": config.to_dict()},
                        report_name="prune_report.json", report=report, onnx=onnx)
    return result


def _transformer_layers(model: nn.Module, config: PruneConfig) -> tuple[PruneConfig, str]:
    """``layer`` on a Hugging Face encoder means its transformer layers (said in the report's notes)."""
    if config.granularity != "layer":
        return config, ""
    from .hf import family

    try:
        family(model)
    except ConfigError:
        return config, ""
    return (dataclasses.replace(config, granularity="transformer-layer"),
            "granularity 'layer' on a Hugging Face encoder: whole transformer layers were ranked and dropped "
            "(granularity 'transformer-layer')")


def _run(model: nn.Module, config: PruneConfig, example_inputs: Any, train_data: Any, fine_tune: FineTune | None,
         eval_fn: Any, loss_fn: Any, progress: bool, inplace: bool) -> tuple[nn.Module, list[LayerChange], list[str],
                                                                              list[str], int | None]:
    """One pruning pass on a copy: (pruned model, per-layer rows, removed blocks, notes, MACs saved if masked)."""
    work = model if inplace else copy.deepcopy(model)
    work.eval()
    ignored = resolve_names(work, config.ignored, "ignored")
    resolve_names(work, config.targets, "target")
    if config.granularity in ("channel", "filter"):
        ignored += _structured_ignores(work, config, example_inputs)
    ctx = PruneContext(example_inputs, ignored, train_data, loss_fn, eval_fn)
    backend = backend_for(config.granularity)(work, config, ctx)
    _schedule(backend, config, fine_tune, progress)
    pruned = backend.finish().eval()
    rows, removed, notes = backend.changes()
    return pruned, rows, removed, notes, getattr(backend, "effective_macs_saved", None)


def _over_pruned(rows: list[LayerChange], config: PruneConfig) -> list[LayerChange]:
    """Layers whose output channels were cut beyond the asked ratio (one channel / round_to of slack)."""
    asked = config.layer_amounts or {}
    over = []
    for c in rows:
        if c.unit != "channels" or not c.before[0]:
            continue
        limit = float(asked.get(c.name, config.amount))
        slack = max(1, config.round_to or 1) / c.before[0]
        if c.removed_fraction > limit + slack + 1e-9:
            over.append(c)
    return over


def _corrected(over: list[LayerChange], config: PruneConfig) -> dict[str, float]:
    """Per-layer ratios that, applied by every group cutting the layer, remove ``amount`` in all."""
    a = config.amount
    out = {}
    for c in over:
        current = float((config.layer_amounts or {}).get(c.name, a))
        cuts = math.log(max(1e-9, 1 - c.removed_fraction)) / math.log(max(1e-9, 1 - current)) if current > 0 else 1
        out[c.name] = max(0.0, 1 - (1 - a) ** (1 / max(cuts, 1.0)))
    return out


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


def save_compressed(model: nn.Module, example_inputs: Any, out: str | os.PathLike[str], stage_name: str,
                    source: str | None, entry: dict[str, Any], report_name: str | None = None,
                    report: Any = None, onnx: bool = True, transforms: Any = ()) -> list[Path]:
    """Write a compressed model into ``out``: model.pt (weights-only format, rebuilt from ``source`` and its
    architecture ``transforms``), model.onnx (parity-checked), the report JSON and a manifest entry. Shared by prune
    and distill."""
    from ..._io import output_lock, package_versions, publish, staging, update_manifest, write_json_atomic
    from ...export.onnx import OnnxConfig, export_onnx
    from ...modelfile import save_model_file

    with output_lock(out) as folder, staging(folder) as stage:       # all or nothing: published at the end
        files = [save_model_file(model, stage / "model.pt", source, transforms)]
        if report is not None and report_name:
            files.append(write_json_atomic(stage / report_name, report.to_dict()))
        if onnx and example_inputs is not None:
            from ._cost import as_tuple

            files.append(export_onnx(model, as_tuple(example_inputs), OnnxConfig(exporter="torchscript"),
                                     out=stage, name="model").path)
        files = publish(stage, folder, [f.name for f in files])
        update_manifest(folder, stage_name, {**entry, "source": source, "files": [f.name for f in files],
                                             "versions": package_versions("torch-pruning", "onnx", "onnxruntime")})
    return files
