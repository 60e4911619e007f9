"""Option parsing shared by the commands: MODEL + --input, --calib data, number lists. No library work here."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

MODEL_HELP = "package.module:factory, a zoo name, an .onnx file, or a model.pt written by edgedeploy"
INPUT_HELP = "input shape NxCxHxW, e.g. 1x3x224x224 (optional for an .onnx file with fixed shapes)"
CALIB_HELP = ("calibration data: 'digits' (sklearn's real digits at the model input), a folder of images "
              "(resized to the model input, scaled by --calib-mean/--calib-scale) or a .npy file (N, ...)")
TRUST_HELP = ("load a model.pt that holds a whole pickled nn.Module: this RUNS CODE FROM THE FILE, only for "
              "files you trust")


def trust_option() -> Any:
    """The --trust-pickle flag every command that reads model.pt files takes."""
    return typer.Option(False, "--trust-pickle", help=TRUST_HELP)


def remote_code_option() -> Any:
    """The --trust-remote-code flag for Hugging Face folders that ship their own modeling code."""
    return typer.Option(False, "--trust-remote-code", help="load a Hugging Face folder that ships its own model code "
                        "(auto_map, e.g. a head-pruned folder's modeling_pruned.py): RUNS THAT CODE, only for "
                        "folders you trust")


def shape_of(text: str | None) -> tuple[int, ...] | None:
    """--input parsed (or None)."""
    from ..shapes import parse_shape

    return parse_shape(text) if text is not None else None


def model_and_shape(ref: str, input_text: str | None, pretrained: bool = False, trust_pickle: bool = False,
                    need_shape: bool = True, trust_remote_code: bool = False,
                    hf_folders: bool = False) -> tuple[Any, tuple[int, ...] | None]:
    """MODEL and --input resolved; the shape is parsed first so a typo fails before a slow model build.
    A Hugging Face folder is taken only by commands that say so (``hf_folders``: prune and distill)."""
    from ..errors import ConfigError, ShapeError
    from ..modelref import load_model

    if not hf_folders and Path(ref).is_dir():
        raise ConfigError(f"{ref} is a folder: prune and distill read a Hugging Face model folder; for this command "
                          "give the model.onnx they write into it (or package.module:factory, a zoo name, a file)")
    shape = shape_of(input_text)
    untrained = _untrained(ref, pretrained)
    model = load_model(ref, pretrained=pretrained, trust_pickle=trust_pickle, trust_remote_code=trust_remote_code)
    if shape is None and not isinstance(model, Path) and need_shape:
        example = ("BATCHxSEQUENCE, e.g. --input 1x128 (NxCxHxW for a ViT)" if Path(ref).is_dir()
                   else "e.g. --input 1x3x224x224")
        raise ShapeError(f"model {ref} is a torch module: give its input shape with --input, {example}")
    if shape is None and isinstance(model, Path) and model.suffix == ".onnx":
        from ..onnx_utils import onnx_inputs

        dims = onnx_inputs(model)[0].shape
        dims = (dims[0] or 1, *dims[1:]) if dims else dims          # a dynamic batch: one sample
        shape = tuple(dims) if None not in dims else None
    if untrained:
        from .app import console

        console.print(f"note: {ref} has untrained, random weights (seed 0); {untrained}", highlight=False,
                      soft_wrap=True)
    return model, shape


def _untrained(ref: str, pretrained: bool) -> str:
    """For a zoo name without --pretrained (its architecture with random weights): seed torch so every run builds
    the same model, and return the fix to announce ('' otherwise) -- nobody should ship it believing it trained."""
    from ..zoo import available
    from ..zoo.registry import has_weights

    if pretrained or ref not in available():
        return ""
    import torch

    torch.manual_seed(0)
    return "add --pretrained for trained weights" if has_weights(ref) else "no trained weights ship for it"


def floats(text: str | None, what: str) -> tuple[float, ...] | None:
    """A comma-separated list of finite numbers (None stays None)."""
    import math

    from ..errors import ConfigError

    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--{what} {text!r} is not a comma-separated list of numbers, e.g. 123.7,116.3,103.5") from None
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"--{what} {text!r} must be finite numbers")
    return values


def ints(text: str | None, what: str) -> list[int] | None:
    """A comma-separated list of positive integers (None stays None)."""
    from ..errors import ConfigError

    if text is None:
        return None
    try:
        values = [int(t) for t in text.split(",")]
    except ValueError:
        raise ConfigError(f"--{what} {text!r} must be comma-separated integers, e.g. 1,2") from None
    if any(v < 1 for v in values):
        raise ConfigError(f"--{what} {text!r} must be positive integers")
    return values


def calib_data(spec: str | None, shape: tuple[int, ...] | None, mean: str | None = None,
               scale: str | None = None, role: str = "calibration") -> Any:
    """--calib resolved to data (dataset name, image folder or .npy); announces how images were scaled."""
    if spec is None:
        return None
    from ..data import ImageConfig, resolve

    images = ImageConfig(**{k: v for k, v in (("mean", floats(mean, "calib-mean")),
                                              ("scale", floats(scale, "calib-scale"))) if v is not None})
    data = resolve(spec, shape, role, images)
    if Path(spec).is_dir() and images.is_default:
        from .app import err_console

        err_console.print(f"[dim]note:[/] images of {spec} scaled to [0, 1]; pass --calib-mean/--calib-scale "
                          "(pixel units) if the model expects other normalization", highlight=False)
    return data
