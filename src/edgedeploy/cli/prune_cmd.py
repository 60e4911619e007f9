"""CLI commands: ``prune`` and ``distill`` (heavy imports stay inside each command)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .app import app, console
from .options import MODEL_HELP, calib_data, model_and_shape, remote_code_option, trust_option

_DATASETS_HELP = "training data: 'digits', a folder of class sub-folders of images, or a .npy file"
_PRUNE_MODEL_HELP = MODEL_HELP + ", or a Hugging Face BERT/ViT folder (save_pretrained)"


def _torch_model(ref: str, pretrained: bool, trust_pickle: bool, input_text: str | None,
                 trust_remote_code: bool = False) -> tuple[Any, Any]:
    """(nn.Module, seeded example input) for MODEL and --input (token ids for a Hugging Face text encoder)."""
    import torch

    from ..errors import ConfigError

    net, shape = model_and_shape(ref, input_text, pretrained, trust_pickle, trust_remote_code=trust_remote_code,
                                 hf_folders=True)
    if isinstance(net, Path):
        raise ConfigError(f"{ref} is an exported model file; prune and distill need the PyTorch model "
                          "(package.module:factory, a zoo name, a model.pt or a Hugging Face folder)")
    if Path(ref).is_dir():
        from ..compress.prune.hf import example_inputs

        return net, example_inputs(net, shape)
    return net, torch.rand(shape, generator=torch.Generator().manual_seed(0))


@app.command("prune")
def prune_cmd(
    model: str = typer.Argument(..., help=_PRUNE_MODEL_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="output folder (model.pt, model.onnx, prune_report.json; a "
                             "Hugging Face folder + model.onnx for a folder MODEL)"),
    input: str | None = typer.Option(None, "--input", "-i", help="input shape NxCxHxW, e.g. 1x1x16x16; BATCHxSEQUENCE "  # noqa: A002
                                     "for a text encoder, e.g. 1x128"),
    granularity: str = typer.Option("channel", "--granularity", "-g", help="element, channel, shape, filter, layer; "
                                    "transformers: head, ffn, transformer-layer (layer = transformer-layer)"),
    amount: float = typer.Option(0.5, "--amount", "-a", help="fraction to remove, in [0, 1)"),
    scope: str = typer.Option("local", "--scope", help="global (rank the whole network) or local (each layer)"),
    criterion: str = typer.Option("l2", "--criterion", "-c", help="l1, l2, taylor, lamp, bn_scale, fpgm, random"),
    ignore: list[str] = typer.Option([], "--ignore", help="module name never pruned (repeatable)"),
    round_to: int | None = typer.Option(None, "--round-to", help="keep channel counts a multiple of this"),
    steps: int = typer.Option(1, "--steps", help="iterative pruning steps"),
    shape_pattern: str = typer.Option("nm", "--shape-pattern", help="shape granularity: nm, kernel, column"),
    data: str | None = typer.Option(None, "--data", help="taylor criterion: " + _DATASETS_HELP + "; a text "
                                    "encoder folder: 'sentences' (stdlib docstrings, tokenized by the folder's tokenizer)"),
    pretrained: bool = typer.Option(False, "--pretrained", help="zoo models: train/load weights first"),
    onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="also export model.onnx and check parity"),
    trust_pickle: bool = trust_option(),
    trust_remote_code: bool = remote_code_option(),
) -> None:
    """Prune MODEL and write the pruned model, its ONNX export and a per-layer report."""
    from .._io import check_output_folder
    from ..compress.prune import PruneConfig, prune
    from ..compress.prune.config import TRANSFORMER_GRANULARITIES
    from ..errors import ConfigError

    check_output_folder(out)
    config = PruneConfig(granularity=granularity, scope=scope, amount=amount, criterion=criterion,
                         ignored=tuple(ignore), round_to=round_to, steps=steps, shape_pattern=shape_pattern)
    net, example = _torch_model(model, pretrained, trust_pickle, input, trust_remote_code)
    if Path(model).is_dir() and granularity not in (*TRANSFORMER_GRANULARITIES, "layer"):
        raise ConfigError(f"--granularity {granularity} does not apply to the Hugging Face folder {model}: prune it "
                          "with -g head, ffn or transformer-layer")
    train = _train_batches(data, example, model, trust_remote_code)
    if train is None and Path(model).is_dir() and config.criterion != "random":
        console.print("note: heads/units/layers are scored on the seeded example input only; --data sentences "
                      "scores them on real text", highlight=False)
    result = prune(net, config, example, train_data=train, out=out, source=_source(model, pretrained), onnx=onnx)
    console.print(result.report.table())
    console.print(result.report.summary(), highlight=False)
    console.print(f"written to {out}")


def _source(ref: str, pretrained: bool) -> str | None:
    """The MODEL reference a saved model.pt is rebuilt from (a model.pt keeps the one it names)."""
    if ref.endswith((".pt", ".pth")):
        from ..modelfile import source_of

        return source_of(ref)
    if Path(ref).is_dir():
        return str(Path(ref).resolve())
    return ref


def _train_batches(spec: str | None, example: Any, ref: str, trust_remote_code: bool = False) -> Any:
    """--data resolved to (x, y) training batches, or tokenized sentences for a text folder (None without --data)."""
    from ..errors import ConfigError

    if spec is None:
        return None
    first = example[0] if isinstance(example, tuple) else example
    text = _is_text(example)
    if text != (spec == "sentences"):
        raise ConfigError(f"--data {spec!r} does not fit {ref}: 'sentences' is for Hugging Face text encoder "
                          "folders, and such a folder takes only 'sentences'")
    if text:
        from ..zoo.sentences import scoring_batches

        return scoring_batches(_tokenizer(ref, trust_remote_code), max_length=int(first.shape[1]))
    import torch

    from ..data import batches

    got = batches(calib_data(spec, tuple(first.shape), role="train"), "train", 64)
    return [(torch.as_tensor(b.inputs[0]), torch.as_tensor(b.labels)) for b in got]   # models take tensors


def _is_text(example: Any) -> bool:
    """True for a text encoder's example (token ids), as ``hf.example_inputs`` makes it."""
    first = example[0] if isinstance(example, tuple) else example
    return not first.is_floating_point()


def _tokenizer(folder: str, trust_remote_code: bool) -> Any:
    """The tokenizer saved in a Hugging Face folder, or a clear error (never an interactive trust prompt: the
    folder's model already needed the same --trust-remote-code decision)."""
    from ..errors import ConfigError

    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{folder} has no usable tokenizer ({type(exc).__name__}); --data sentences needs "
                          "tokenizer.json or vocab.txt in the folder") from None


@app.command("distill")
def distill_cmd(
    student: str = typer.Argument(..., help=_PRUNE_MODEL_HELP),
    teacher: str = typer.Option(..., "--teacher", "-t", help="teacher model (same references as STUDENT)"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder (model.pt, model.onnx, distill_history.json; "
                             "a Hugging Face folder + model.onnx for a folder STUDENT)"),
    data: str | None = typer.Option(None, "--data", help=_DATASETS_HELP + " (default digits); text encoder "
                                    "folders: sentences (stdlib docstrings, the default)"),
    input: str | None = typer.Option(None, "--input", "-i", help="input shape NxCxHxW, e.g. 1x1x16x16; "  # noqa: A002
                                     "BATCHxSEQUENCE for a text encoder (the ONNX example), e.g. 1x128"),
    epochs: int = typer.Option(5, "--epochs"),
    lr: float | None = typer.Option(None, "--lr", help="learning rate (default 3e-3; text encoders 5e-4)"),
    temperature: float | None = typer.Option(None, "--temperature", "-T", help="softmax temperature (default 4)"),
    alpha: float | None = typer.Option(None, "--alpha", help="weight of the soft-target loss (1 - alpha: labels; "
                                       "default 0.5)"),
    more_text: bool = typer.Option(False, "--more-text", help="text encoders: also train on the docstrings of "
                                   "installed libraries (about ten times the text, as much longer)"),
    pretrained_teacher: bool = typer.Option(True, "--pretrained-teacher/--raw-teacher",
                                            help="zoo teachers: train/load weights first"),
    onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="also export model.onnx"),
    trust_pickle: bool = trust_option(),
    trust_remote_code: bool = remote_code_option(),
) -> None:
    """Distill TEACHER into STUDENT on real data; print accuracy (or embedding fidelity) before/after and write it."""
    from .._io import check_output_folder
    from ..compress.distill import DistillConfig
    from ..compress.distill_report import distill_summary
    from ..compress.prune.api import save_compressed
    from ..errors import ConfigError

    if Path(student).is_dir():
        given = [flag for flag, used in (("--temperature", temperature is not None), ("--alpha", alpha is not None),
                                         ("--raw-teacher", not pretrained_teacher), ("--trust-pickle", trust_pickle))
                 if used]
        if given:
            raise ConfigError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to the Hugging "
                              f"Face folder {student}: a text encoder learns its teacher folder's embeddings "
                              "(cosine + hidden-state MSE); leave it out")
        _distill_encoder(student, teacher, out, data, input, epochs, lr, more_text, trust_remote_code, onnx)
        return
    config = DistillConfig(temperature=4.0 if temperature is None else temperature,
                           alpha=0.5 if alpha is None else alpha, epochs=epochs, lr=3e-3 if lr is None else lr)
    check_output_folder(out)
    if Path(teacher).is_dir():
        raise ConfigError(f"teacher {teacher} is a Hugging Face folder but the student {student} is not: a folder "
                          "teaches the folder pruned from it (distill FOLDER --teacher FOLDER)")
    snet, example = _torch_model(student, False, trust_pickle, input)
    data = data or "digits"
    dataset = calib_data(data, tuple(example.shape), role="train")       # a bad --data fails before the teacher
    tnet, _ = _torch_model(teacher, pretrained_teacher, trust_pickle, input)
    summary = distill_summary(snet, tnet, dataset, config)
    save_compressed(summary.model, example, out, "distill", _source(student, False),
                    {"teacher": teacher, "data": data, "config": summary.config}, report_name="distill_history.json",
                    report=summary, onnx=onnx)
    console.print(f"teacher {summary.teacher_top1:.2f}% | student {summary.before_top1:.2f}% -> "
                  f"{summary.after_top1:.2f}% top-1 on {data} test data")
    console.print(f"written to {out}")


def _distill_encoder(student: str, teacher: str, out: Path, data: str | None, input_text: str | None, epochs: int,
                     lr: float | None, more_text: bool, trust_remote_code: bool, onnx: bool = True) -> None:
    """A pruned Hugging Face text encoder folder learns back its teacher's embeddings (zoo.encoder_recovery)."""
    from .._io import check_output_folder
    from ..compress.prune.hf import family, save_hf_folder
    from ..errors import ConfigError
    from ..zoo.encoder_recovery import RecoveryConfig, recover_encoder

    if data not in (None, "sentences"):
        raise ConfigError(f"--data {data!r} does not fit the folder {student}: a text encoder distills on "
                          "'sentences' (stdlib docstrings)")
    config = RecoveryConfig(epochs=epochs, more_text=more_text, **({} if lr is None else {"lr": lr}))
    check_output_folder(out)
    not_text = (f"teacher {teacher} is not a Hugging Face text encoder folder; a pruned folder learns from its "
                "unpruned source folder (e.g. the one it was pruned from)")
    if not Path(teacher).is_dir():
        raise ConfigError(not_text)
    snet, example = _torch_model(student, False, False, input_text, trust_remote_code)
    if not _is_text(example):
        raise ConfigError(f"{student} is not a text encoder; distill a ViT folder with package.module:factory "
                          "references or from Python (compress.distill)")
    tnet, _ = _torch_model(teacher, False, False, input_text, trust_remote_code)
    if family(tnet) != "bert":
        raise ConfigError(not_text)
    result = recover_encoder(snet, tnet, _tokenizer(student, trust_remote_code), config)
    save_hf_folder(result.model, example, out, {"teacher": teacher, "source": _source(student, False),
                                                "data": result.source}, result, stage="distill",
                   report_name="distill_history.json", onnx=onnx)
    console.print(result.summary(), highlight=False)
    console.print(f"written to {out}")
