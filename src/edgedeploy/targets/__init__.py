"""edgedeploy.targets: device profiles (``Target``, shipped as YAML) and budget checks (``check``).

``check`` itself lives in ``edgedeploy.targets.check`` (and is re-exported as ``edgedeploy.check``).
"""
from __future__ import annotations

from .target import Target, TargetError, available_targets

__all__ = ["Target", "TargetError", "available_targets"]
