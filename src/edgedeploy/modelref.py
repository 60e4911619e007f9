"""Resolve a MODEL reference: ``package.module:factory``, a zoo name, an exported file, a saved ``model.pt``,
or a Hugging Face model folder (``save_pretrained``; its own modeling code runs only with ``trust_remote_code``).

User code is imported without shadowing installed packages (the current folder is searched last), and a
``model.pt`` is loaded weights-only: a whole pickled module runs code from the file, so it needs an
explicit ``trust_pickle=True`` (the CLI's ``--trust-pickle``).
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError, ModelLoadError, user_code
from .shapes import parse_shape  # noqa: F401  (re-exported: MODEL and --input go together)

MODEL_FILE_SUFFIXES = (".onnx", ".xml", ".blob")
TORCH_FILE_SUFFIXES = (".pt", ".pth")
def load_model(ref: str, pretrained: bool = False, trust_pickle: bool = False, trust_remote_code: bool = False) -> Any:
    """Return an ``nn.Module`` (eval mode) for a factory path, zoo name, ``model.pt`` or Hugging Face folder, or a
    Path for an exported file."""
    if not isinstance(ref, str) or not ref.strip():
        raise ModelLoadError(f"MODEL {ref!r} is empty; give package.module:factory, a zoo name or a model file")
    path = Path(ref)
    if path.is_dir():
        if pretrained:
            raise ConfigError(f"--pretrained applies to zoo models, not to the folder {ref}")
        return load_hf_folder(path, trust_remote_code)
    suffix = path.suffix.lower()
    if suffix in MODEL_FILE_SUFFIXES:
        if not path.is_file():
            raise ModelLoadError(f"model file {ref} does not exist; check the path")
        if pretrained:
            raise ConfigError(f"--pretrained applies to zoo models, not to the file {ref}")
        return path
    if suffix in TORCH_FILE_SUFFIXES:
        from .modelfile import apply_payload, load_model_file

        obj = load_model_file(path, trust_pickle=trust_pickle)
        if isinstance(obj, dict):           # weights-only payload: rebuild its source architecture, then fill it
            source = load_model(obj["source"])
            if isinstance(source, Path):
                raise ModelLoadError(f"{ref} names {obj['source']}, which is not a torch model")
            for transform in obj.get("transforms") or []:
                source = _transform(source, transform, ref)
            return apply_payload(source, obj, path)
        return obj
    kwargs = {"pretrained": True} if pretrained else {}
    if ":" in ref:
        return _from_factory(ref, **kwargs)
    return _from_zoo(ref, **kwargs)


def load_hf_folder(folder: Path, trust_remote_code: bool = False) -> Any:
    """A Hugging Face model folder (config.json + weights) loaded offline with the class its config names."""
    import json

    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise ModelLoadError(f"folder {folder} has no config.json; MODEL may be a Hugging Face model folder "
                             "(written by save_pretrained), a model file, a zoo name or package.module:factory")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{cfg_file} is not readable JSON ({exc}); re-save the model folder") from exc
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"{cfg_file} holds a {type(cfg).__name__}, not a model config object")
    if cfg.get("auto_map") and not trust_remote_code:
        raise ConfigError(f"{folder} ships its own model code (auto_map in config.json, e.g. the modeling_pruned.py "
                          "edgedeploy writes for per-layer head counts); pass --trust-remote-code to run it, only "
                          "for folders you trust")
    try:
        import transformers
    except ImportError:
        raise ModelLoadError(f"{folder} is a Hugging Face model folder; install transformers "
                             "(pip install 'edgedeploy[transformers]')") from None
    arch = (cfg.get("architectures") or [""])[0]
    cls = getattr(transformers, arch, None) if isinstance(arch, str) and not cfg.get("auto_map") else None
    loader = cls if cls is not None and hasattr(cls, "from_pretrained") else transformers.AutoModel
    from .compress.prune.hf import quiet_transformers

    try:                # no loading bar; missing weights are our one-line error below, not a load-report table
        with quiet_transformers(errors_only=True), user_code(f"loading the Hugging Face folder {folder}"):
            model, info = loader.from_pretrained(str(folder), local_files_only=True,
                                                 trust_remote_code=trust_remote_code, output_loading_info=True)
    except Exception as exc:  # noqa: BLE001 - a broken or foreign folder
        raise ModelLoadError(f"cannot load the Hugging Face folder {folder}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}; check its config.json and "
                             "weights (model.safetensors)") from exc
    missing = sorted(info.get("missing_keys") or ()) + sorted(info.get("mismatched_keys") or ())
    if missing:
        raise ModelLoadError(f"the Hugging Face folder {folder} has no weights for {len(missing)} tensor(s) its "
                             f"config.json asks for (e.g. {', '.join(map(str, missing[:3]))}); they would be random: "
                             "fix config.json or the weights file")
    return model.eval()


#: architecture changes a model file may ask for, by kind (a file names a kind, never a function to run)
TRANSFORMS = ("swap", "reparameterize", "mod", "nas")


def _transform(model: Any, t: Any, ref: str) -> Any:
    """Re-apply one recorded architecture change to the rebuilt source model (weights are overwritten after)."""
    kind = t.get("kind") if isinstance(t, dict) else None
    if kind not in TRANSFORMS:
        raise ModelLoadError(f"{ref} asks for the architecture transform {kind!r}; known: {', '.join(TRANSFORMS)}")
    try:
        if kind == "swap":
            from .blocks.swap import swap

            return swap(model, list(t["rules"]), tuple(t["input"])).model
        if kind == "reparameterize":
            from .blocks.reparam import reparameterize

            return reparameterize(model, tuple(t["input"])).model
        if kind == "nas":                     # the searched architecture replaces the source model entirely
            from .compress.nas import Arch, build_model

            return build_model(Arch.from_dict(t["arch"]))
        from .compress.mod import MoDConfig, apply_mod

        return apply_mod(model, MoDConfig(**t["config"])).model
    except (KeyError, TypeError) as exc:
        raise ModelLoadError(f"{ref}: the {kind} transform record is malformed ({exc}); re-save the model") from exc


def import_user_module(module_name: str) -> Any:
    """Import a user's module; the current folder is searched after installed packages, never before them."""
    cwd = str(Path.cwd())
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)        # last: a stray ./onnx.py must never replace the real onnx package
    with user_code(f"importing {module_name}"):
        return importlib.import_module(module_name)


def _from_factory(ref: str, **kwargs: Any) -> Any:
    import torch

    module_name, _, attr = ref.partition(":")
    if not module_name or not attr or ":" in attr or not all(p.isidentifier() for p in module_name.split(".")):
        raise ModelLoadError(f"MODEL {ref!r} is not package.module:factory (e.g. mypkg.models:build)")
    try:
        module = import_user_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's module
        raise ModelLoadError(f"cannot import module {module_name!r} for model {ref!r}: {type(exc).__name__}: {exc}; "
                             "check the module path and that it is importable from the current folder") from exc
    factory = getattr(module, attr, None)
    if factory is None:
        raise ModelLoadError(f"module {module_name!r} has no attribute {attr!r}; MODEL must be package.module:factory")
    if not isinstance(factory, torch.nn.Module) and not callable(factory):
        raise ModelLoadError(f"{ref} is a {type(factory).__name__}, not a factory function or an nn.Module")
    try:
        with user_code(f"factory {ref}"):
            model = factory(**kwargs) if not isinstance(factory, torch.nn.Module) else factory
    except TypeError as exc:
        if kwargs:
            raise ModelLoadError(f"factory {ref} does not take {', '.join(kwargs)} ({exc}); drop --pretrained") from exc
        raise ModelLoadError(f"factory {ref} raised TypeError: {exc}") from exc
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"factory {ref} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"{ref} returned {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def _from_zoo(name: str, **kwargs: Any) -> Any:
    from . import zoo

    names = zoo.available()
    if name not in names:
        raise ModelLoadError(f"unknown model {name!r}: give package.module:factory, a .onnx/.xml/.pt file, "
                             f"or a zoo name ({', '.join(names)})")
    try:
        return zoo.create(name, **kwargs).eval()
    except TypeError as exc:
        if kwargs:
            raise ModelLoadError(f"zoo model {name!r} has no trained weights to load ({exc}); drop --pretrained") from exc
        raise ModelLoadError(f"zoo model {name!r} could not be built: {exc}") from exc
