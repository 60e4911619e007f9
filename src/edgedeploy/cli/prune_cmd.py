"""CLI commands: ``prune`` and ``distill`` (heavy imports stay inside each command)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .app import app, console

_MODEL_HELP = "package.module:factory, a zoo name, or a model.pt written by `edgedeploy prune`"
_DATASETS = ("digits",)


def _load_torch(ref: str, pretrained: bool) -> Any:
    """An nn.Module from a factory path, a zoo name (optionally trained here) or a saved model.pt."""
    import torch

    from ..errors import ConfigError, ModelLoadError
    from ..modelref import load_model

    if ref.endswith((".pt", ".pth")):
        if not Path(ref).is_file():
            raise ModelLoadError(f"model file {ref} does not exist; check the path")
        obj = torch.load(ref, weights_only=False)
        if not isinstance(obj, torch.nn.Module):
            raise ModelLoadError(f"{ref} holds a {type(obj).__name__}, not a whole nn.Module; "
                                 "save the module itself (torch.save(model, path))")
        return obj.eval()
    model = load_model(ref, **({"pretrained": True} if pretrained else {}))
    if isinstance(model, Path):
        raise ConfigError(f"{ref} is an exported model file; prune and distill need the PyTorch model "
                          "(package.module:factory, a zoo name or a model.pt)")
    return model


def _example(model: Any, input_shape: str | None, model_ref: str) -> Any:
    import torch

    from ..errors import ShapeError
    from ..modelref import parse_shape

    if input_shape is None:
        raise ShapeError(f"give the input shape of {model_ref} with --input, e.g. --input 1x1x16x16")
    return torch.rand(parse_shape(input_shape), generator=torch.Generator().manual_seed(0))


def _dataset(name: str) -> Any:
    from ..errors import ConfigError

    if name not in _DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of: {', '.join(_DATASETS)}")
    from ..zoo.digits import load_digits_data

    return load_digits_data()


def _save(model: Any, example: Any, out: Path, key: str, extra: dict[str, Any], onnx: bool) -> list[str]:
    """Write model.pt (+ model.onnx verified on ONNX Runtime) and the manifest entry."""
    import torch

    from .._io import atomic_path, package_versions, update_manifest

    with atomic_path(out / "model.pt") as tmp:
        torch.save(model, tmp)
    files = ["model.pt"]
    if onnx:
        from ..export.onnx import OnnxConfig, export_onnx

        res = export_onnx(model, (example,), OnnxConfig(exporter="torchscript"), out=out, name="model")
        files.append(res.path.name)
        console.print(f"ONNX: {res}")
    update_manifest(out, key, {**extra, "files": files + extra.pop("files", []),
                               "versions": package_versions("torch-pruning", "onnx", "onnxruntime")})
    return files


@app.command("prune")
def prune_cmd(
    model: str = typer.Argument(..., help=_MODEL_HELP),
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
    pretrained: bool = typer.Option(False, "--pretrained", help="zoo models: train/load weights first"),
    onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="also export model.onnx and check parity"),
) -> None:
    """Prune MODEL and write the pruned model, its ONNX export and a per-layer report."""
    from .._io import ensure_dir
    from ..compress.prune import PruneConfig, prune

    config = PruneConfig(granularity=granularity, scope=scope, amount=amount, criterion=criterion,
                         ignored=tuple(ignore), round_to=round_to, steps=steps, shape_pattern=shape_pattern)
    net = _load_torch(model, pretrained)
    example = _example(net, input, model)
    result = prune(net, config, example)
    console.print(result.report.table())
    console.print(result.report.summary(), highlight=False)
    ensure_dir(out)
    result.report.to_json(out / "prune_report.json")
    _save(result.model, example, out, "prune",
          {"model": model, "input": input, "config": config.to_dict(), "files": ["prune_report.json"]}, onnx)
    console.print(f"written to {out}")


@app.command("distill")
def distill_cmd(
    student: str = typer.Argument(..., help=_MODEL_HELP),
    teacher: str = typer.Option(..., "--teacher", "-t", help="teacher model (same references as STUDENT)"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder (model.pt, model.onnx, distill_history.json)"),
    data: str = typer.Option("digits", "--data", help=f"training data: {', '.join(_DATASETS)}"),
    input: str | None = typer.Option(None, "--input", "-i", help="input shape for the ONNX export, e.g. 1x1x16x16"),  # noqa: A002
    epochs: int = typer.Option(5, "--epochs"),
    lr: float = typer.Option(3e-3, "--lr"),
    temperature: float = typer.Option(4.0, "--temperature", "-T"),
    alpha: float = typer.Option(0.5, "--alpha", help="weight of the soft-target loss (1 - alpha: labels)"),
    pretrained_teacher: bool = typer.Option(True, "--pretrained-teacher/--raw-teacher",
                                            help="zoo teachers: train/load weights first"),
    onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="also export model.onnx (needs --input)"),
) -> None:
    """Distill TEACHER into STUDENT on real data; print accuracy before/after and write the student."""
    from dataclasses import asdict

    from .._io import ensure_dir, write_json_atomic
    from ..compress.distill import DistillConfig, distill
    from ..zoo.digits import accuracy

    config = DistillConfig(temperature=temperature, alpha=alpha, epochs=epochs, lr=lr)
    dataset = _dataset(data)
    tnet = _load_torch(teacher, pretrained_teacher)
    snet = _load_torch(student, False)
    example = _example(snet, input, student) if onnx else None

    def acc(m: Any) -> float:
        return accuracy(m, dataset.x_test, dataset.y_test)

    before, teacher_acc = acc(snet), acc(tnet)
    result = distill(snet, tnet, dataset, config, eval_fn=acc)
    after = result.history[-1]["eval"]
    console.print(f"teacher {teacher_acc:.2f}% | student {before:.2f}% -> {after:.2f}% top-1 on {data} test")
    ensure_dir(out)
    write_json_atomic(out / "distill_history.json", {"teacher_top1": teacher_acc, "before_top1": before,
                                                     "after_top1": after, "history": result.history})
    entry = {"student": student, "teacher": teacher, "data": data, "config": asdict(config),
             "files": ["distill_history.json"]}
    _save(result.model, example, out, "distill", entry, onnx)
    console.print(f"written to {out}")
