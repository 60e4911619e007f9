"""edgedeploy.export: torch -> ONNX -> OpenVINO IR (-> MyriadX blob), each verified against torch."""
from __future__ import annotations

from .result import ExportResult, Parity

__all__ = ["ExportResult", "Parity"]
