"""CLI commands: ``prune`` and ``distill`` (heavy imports stay inside each command)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .app import app, console
from .options import MODEL_HELP, calib_data, model_and_shape, trust_option

_DATASETS_HELP = "training data: 'digits', a folder of class sub-folders of images, or a .npy file"


def _torch_model(ref: str, pretrained: bool, trust_pickle: bool, input_text: str | None) -> tuple[Any, Any]:
    """(nn.Module, seeded example input) for MODEL and --input."""
    import torch

    from ..errors import ConfigError

    net, shape = model_and_shape(ref, input_text, pretrained, trust_pickle)
    if isinstance(net, Path):
        raise ConfigError(f"{ref} is an exported model file; prune and distill need the PyTorch model "
                          "(package.module:factory, a zoo name or a model.pt)")
    return net, torch.rand(shape, generator=torch.Generator().manual_seed(0))


@app.command("prune")
def prune_cmd(
    model: str = typer.Argument(..., help=MODEL_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="output folder (model.pt, model.onnx, prune_report.json)"),
    input: str | None = typer.Option(None, "--input", "-i", help="input shape NxCxHxW, e.g. 1x1x16x16"),  # noqa: A002
    granularity: str = typer.Option("channel", "--granularity", "-g", help="element, channel, shape, filter, layer"),
    amount: float = typer.Option(0.5, "--amount", "-a", help="fraction to remove, in [0, 1)"),
    scope: str = typer.Option("local", "--scope", help="global (rank the whole network) or local (each layer)"),
    criterion: str = typer.Option("l2", "--criterion", "-c", help="l1, l2, taylor, lamp, bn_scale, fpgm, random"),
    ignore: list[str] = typer.Option([], "--ignore", help="module name never pruned (repeatable)"),
    round_to: int | None = typer.Option(None, "--round-to", help="keep channel counts a multiple of this"),
    steps: int = typer.Option(1, "--steps", help="iterative pruning steps"),
    shape_pattern: str = typer.Option("nm", "--shape-pattern", help="shape granularity: nm, kernel, column"),
    data: str | None = typer.Option(None, "--data", help="taylor criterion: " + _DATASETS_HELP),
    pretrained: bool = typer.Option(False, "--pretrained", help="zoo models: train/load weights first"),
    onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="also export model.onnx and check parity"),
    trust_pickle: bool = trust_option(),
) -> None:
    """Prune MODEL and write the pruned model, its ONNX export and a per-layer report."""
    from .._io import check_output_folder
    from ..compress.prune import PruneConfig, prune

    check_output_folder(out)
    config = PruneConfig(granularity=granularity, scope=scope, amount=amount, criterion=criterion,
                         ignored=tuple(ignore), round_to=round_to, steps=steps, shape_pattern=shape_pattern)
    net, example = _torch_model(model, pretrained, trust_pickle, input)
    train = _train_batches(data, tuple(example.shape))
    result = prune(net, config, example, train_data=train, out=out, source=_source(model, pretrained))
    console.print(result.report.table())
    console.print(result.report.summary(), highlight=False)
    console.print(f"written to {out}")


def _source(ref: str, pretrained: bool) -> str | None:
    """The MODEL reference a saved model.pt is rebuilt from (a model.pt keeps the one it names)."""
    if ref.endswith((".pt", ".pth")):
        from ..modelfile import source_of

        return source_of(ref)
    return ref


def _train_batches(spec: str | None, shape: tuple[int, ...]) -> Any:
    """--data resolved to (x, y) training batches (None without --data)."""
    if spec is None:
        return None
    from ..data import batches

    return [(b.inputs[0], b.labels) for b in batches(calib_data(spec, shape, role="train"), "train", 64)]


@app.command("distill")
def distill_cmd(
    student: str = typer.Argument(..., help=MODEL_HELP),
    teacher: str = typer.Option(..., "--teacher", "-t", help="teacher model (same references as STUDENT)"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder (model.pt, model.onnx, distill_history.json)"),
    data: str = typer.Option("digits", "--data", help=_DATASETS_HELP),
    input: str | None = typer.Option(None, "--input", "-i", help="input shape NxCxHxW, e.g. 1x1x16x16"),  # noqa: A002
    epochs: int = typer.Option(5, "--epochs"),
    lr: float = typer.Option(3e-3, "--lr"),
    temperature: float = typer.Option(4.0, "--temperature", "-T"),
    alpha: float = typer.Option(0.5, "--alpha", help="weight of the soft-target loss (1 - alpha: labels)"),
    pretrained_teacher: bool = typer.Option(True, "--pretrained-teacher/--raw-teacher",
                                            help="zoo teachers: train/load weights first"),
    onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="also export model.onnx"),
    trust_pickle: bool = trust_option(),
) -> None:
    """Distill TEACHER into STUDENT on real data; print accuracy before/after and write the student."""
    from .._io import check_output_folder
    from ..compress.distill import DistillConfig
    from ..compress.distill_report import distill_summary
    from ..compress.prune.api import save_compressed

    config = DistillConfig(temperature=temperature, alpha=alpha, epochs=epochs, lr=lr)
    check_output_folder(out)
    snet, example = _torch_model(student, False, trust_pickle, input)
    tnet, _ = _torch_model(teacher, pretrained_teacher, trust_pickle, input)
    dataset = calib_data(data, tuple(example.shape), role="train")
    summary = distill_summary(snet, tnet, dataset, config)
    save_compressed(summary.model, example, out, "distill", _source(student, False),
                    {"teacher": teacher, "data": data, "config": summary.config}, report_name="distill_history.json",
                    report=summary, onnx=onnx)
    console.print(f"teacher {summary.teacher_top1:.2f}% | student {summary.before_top1:.2f}% -> "
                  f"{summary.after_top1:.2f}% top-1 on {data} test data")
    console.print(f"written to {out}")
