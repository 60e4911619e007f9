"""Compiler op checks ``check()`` runs for a target: a small registry that export backends fill.

A target's YAML names its compiler under ``extras.op_check`` (``myriad``, ``qnn``). The check itself lives
with the exporter that compiles for that device and is registered as a Python entry point in the group
``edgedeploy.compilers`` (see pyproject.toml), so this package never imports the exporters and a third
party can add a compiler by shipping an entry point. A check is ``fn(model_or_path, input_shape, target)
-> Verdict`` and must say ``passed=None`` ("unknown") whenever it cannot know what the compiler would do.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ..errors import ConfigError

GROUP = "edgedeploy.compilers"
CompilerCheck = Callable[[Any, Any, Any], Any]


@lru_cache(maxsize=1)
def compiler_checks() -> dict[str, CompilerCheck]:
    """Every registered compiler check by name (loaded from the ``edgedeploy.compilers`` entry points)."""
    from importlib.metadata import entry_points

    return {ep.name: ep.load() for ep in entry_points(group=GROUP)}


def compiler_check(name: str) -> CompilerCheck:
    """The check registered as ``name``; ConfigError listing the valid names otherwise."""
    checks = compiler_checks()
    if name not in checks:
        raise ConfigError(f"unknown compiler op check {name!r} (extras.op_check); registered: "
                          f"{', '.join(sorted(checks)) or 'none (is edgedeploy installed with pip install -e .?)'}")
    return checks[name]
