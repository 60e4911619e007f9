"""edgedeploy.run: whole flows made of several stages (multi-format export; YAML recipes)."""
from __future__ import annotations

from .export import ExportConfig, export

__all__ = ["ExportConfig", "export"]
