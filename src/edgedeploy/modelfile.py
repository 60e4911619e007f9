"""``model.pt`` files that load without running code: tensors and plain attributes, rebuilt from the source model.

A pruned or distilled model changes channel counts, so a plain state dict no longer fits its factory.
``save_model_file`` stores the MODEL reference it came from, every parameter and buffer, and the plain
attributes (ints, floats, strings, tuples) of every module; ``modelref.load_model`` rebuilds the source model,
re-applies the recorded architecture transforms (swap, reparameterize, mod: from a fixed list, never code named
by the file), resizes its tensors and restores those attributes — all with ``torch.load(weights_only=True)``.
A whole pickled module (``torch.save(model)``) still loads, but only with ``trust_pickle=True``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import ModelLoadError

FORMAT = "edgedeploy.model/1"
_PLAIN = (int, float, bool, str, type(None))


def _plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    return isinstance(value, tuple) and all(isinstance(v, _PLAIN) for v in value)


def save_model_file(model: Any, path: str | os.PathLike[str], source: str | None = None,
                    transforms: list[dict[str, Any]] | tuple[()] = ()) -> Path:
    """Write ``model`` to ``path`` in the weights-only format (``source``: the MODEL reference to rebuild from;
    ``transforms``: the architecture changes, in order, that turn the source into this model, e.g.
    ``{"kind": "swap", "rules": [...], "input": [1, 3, 64, 64]}``; see ``modelref.TRANSFORMS``)."""
    import torch

    from ._io import atomic_path

    attrs = {name: {k: v for k, v in vars(m).items() if not k.startswith("_") and _plain(v)}
             for name, m in model.named_modules()}
    payload = {"format": FORMAT, "source": source, "transforms": [dict(t) for t in transforms],
               "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, "attrs": attrs}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_model_file(path: str | os.PathLike[str], trust_pickle: bool = False) -> Any:
    """Read a ``model.pt``: a whole nn.Module (only with ``trust_pickle``), or the weights-only payload, which
    ``edgedeploy.modelref.load_model`` (or ``apply_payload``) turns back into the model."""
    import pickle

    import torch

    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"model file {p} does not exist; check the path")
    if not _looks_like_torch(p):
        raise ModelLoadError(f"{p} is not a PyTorch model file (neither torch.save's zip format nor a pickle); "
                             "check the path")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" not in str(exc) and "Unsupported global" not in str(exc):
            raise ModelLoadError(f"{p} is not a PyTorch model file ({str(exc).splitlines()[0][:120]})") from exc
        if not trust_pickle:
            raise ModelLoadError(f"{p} holds a pickled Python object (a whole nn.Module); loading it runs code from "
                                 "the file: pass trust_pickle=True only if you trust its author") from None
        obj = _load_pickle(p)
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelLoadError(f"{p} is not a PyTorch model file ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:120] if str(exc) else ''})") from exc
    if isinstance(obj, torch.nn.Module):
        return obj.eval()
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        if not obj.get("source"):
            raise ModelLoadError(f"{p} does not name the model it came from; load its 'state' into your "
                                 "architecture")
        return obj              # a payload: ``modelref.load_model`` rebuilds its source and applies it
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{p} holds a bare state dict; it needs its architecture: load it into your model "
                             "(model.load_state_dict) and pass package.module:factory instead")
    raise ModelLoadError(f"{p} holds a {type(obj).__name__}, not a model edgedeploy can rebuild")


def _looks_like_torch(p: Path) -> bool:
    """torch.save writes a zip archive (or, in the legacy format, a pickle starting with the protocol byte)."""
    import zipfile

    with open(p, "rb") as f:
        head = f.read(2)
    return zipfile.is_zipfile(p) or head[:1] == b"\x80"


def _load_pickle(p: Path) -> Any:
    import torch

    try:
        return torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - whatever the pickle raises
        raise ModelLoadError(f"{p} could not be unpickled ({type(exc).__name__}: {exc})") from exc


def apply_payload(model: Any, obj: dict[str, Any], p: Path) -> Any:
    """Put a saved payload's tensors and plain attributes into ``model`` (the architecture it was saved from)."""
    import torch

    modules = dict(model.named_modules())
    source = obj.get("source")
    for key, tensor in obj["state"].items():
        owner, _, name = key.rpartition(".")
        module = modules.get(owner)
        if module is None:
            raise ModelLoadError(f"{p}: tensor {key} has no module {owner!r} in {source}; the source model changed")
        if name in module._parameters:
            module._parameters[name] = torch.nn.Parameter(tensor, requires_grad=tensor.is_floating_point())
        elif name in module._buffers:
            module._buffers[name] = tensor
        else:
            raise ModelLoadError(f"{p}: {source} has no tensor {key}; the source model changed")
    for name, attrs in obj.get("attrs", {}).items():
        if name in modules:
            for k, v in attrs.items():
                setattr(modules[name], k, tuple(v) if isinstance(v, list) else v)
    return model.eval()


def source_of(path: str | os.PathLike[str]) -> str | None:
    """The MODEL reference a weights-only ``model.pt`` was saved from (None for other files)."""
    import torch

    try:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not our format: nothing to rebuild from
        return None
    return obj.get("source") if isinstance(obj, dict) and obj.get("format") == FORMAT else None
