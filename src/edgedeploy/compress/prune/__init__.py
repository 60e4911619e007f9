"""Pruning at every granularity (element, channel, shape, filter, layer), global or local, with a report."""
from __future__ import annotations

from .api import prune
from .config import PruneConfig
from .report import LayerChange, PruneReport, PruneResult

__all__ = ["LayerChange", "PruneConfig", "PruneReport", "PruneResult", "prune"]
