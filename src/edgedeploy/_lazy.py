"""Lazy re-exports for package ``__init__`` files: a name's module is imported the first time it is used."""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str], submodules: Iterable[str] = ()
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``: ``exports`` maps a public name to the (relative) module
    defining it; ``submodules`` are subpackages reachable as attributes."""
    names = sorted(exports)
    subs = frozenset(submodules)

    def getattr_(name: str) -> Any:
        module = importlib.import_module(package)
        if name in exports:
            value = getattr(importlib.import_module(exports[name], package), name)
            setattr(module, name, value)
            return value
        if name in subs:
            return importlib.import_module(f".{name}", package)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return names + sorted(subs)

    return getattr_, dir_, names
