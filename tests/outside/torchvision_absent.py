"""Import timm and facenet-pytorch without torchvision, which cannot load beside the CPU build of torch 2.13.

PyPI's torchvision wheels are CUDA builds: their native ops need libtorch_cuda, so ``import torchvision``
fails here. timm and facenet-pytorch import it at module load for a few helpers (FrozenBatchNorm2d, image
transforms, NMS) that the architectures under test never call. ``absent()`` registers an import hook
that provides ``torchvision`` modules whose every attribute is a *refusal*: a class or function that raises
ImportError naming the attribute the moment it is instantiated or called. Nothing is emulated, so a code
path that really needs torchvision fails loudly instead of silently computing something else.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Iterator
from typing import Any

MESSAGE = ("torchvision is not usable beside the CPU build of torch 2.13 (PyPI's wheels need CUDA); "
           "{name} was called, so this code path really needs it")


class _Refusal(type):
    """A stand-in class: subclassing and isinstance checks work, instantiating it raises."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise ImportError(MESSAGE.format(name=cls.__qualname__))

    def __getattr__(cls, name: str) -> Any:   # enum members used as dict keys at import (InterpolationMode.X)
        if name.startswith("__"):
            raise AttributeError(name)
        return _Refusal(name, (), {"__qualname__": f"{cls.__qualname__}.{name}", "__module__": cls.__module__})


class _RefusingModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Refusal(name, (), {"__qualname__": f"{self.__name__}.{name}", "__module__": self.__name__})


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        module = _RefusingModule(spec.name)
        module.__path__ = []          # a package, so submodules resolve through this finder too
        module.__version__ = "0.0-absent"
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


@contextlib.contextmanager
def absent() -> Iterator[None]:
    """The refusing torchvision while the block imports timm / facenet-pytorch (unless a working torchvision is
    importable); removed afterwards, so other libraries of the same process (transformers probes for
    torchvision) never see it. The modules imported meanwhile keep their references to the stand-ins."""
    try:
        import torchvision  # noqa: F401
        yield
        return
    except Exception:  # noqa: BLE001 - the CUDA wheel fails in several ways
        sys.modules.pop("torchvision", None)
    finder = _Finder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
