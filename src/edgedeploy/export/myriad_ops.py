"""What the MyriadX (RVC2) OpenVINO 2021.4 compiler accepts, from the measured op table ``myriadx_ops.yaml``.

Shared by the blob exporter, its compiler check and the model splitter: ops the table says the compiler rejects
are refused up front (naming each node); ops never probed alone are left to the compiler itself.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UnsupportedOpError
from ..onnx_utils import all_nodes as _all_nodes
from .onnx_opset import MYRIAD_MAX_OPSET

if TYPE_CHECKING:
    import onnx

OPS_FILE = Path(__file__).resolve().parent.parent / "targets" / "profiles" / "myriadx_ops.yaml"


@functools.lru_cache(maxsize=1)
def _ops_table() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(OPS_FILE.read_text(encoding="utf-8"))


def myriad_supported_ops() -> frozenset[str]:
    """ONNX op types the OpenVINO 2021.4 MYRIAD plugin compiles (measured; see ``myriadx_ops.yaml``)."""
    return frozenset(_ops_table()["supported"])


def myriad_op_status(model: onnx.ModelProto) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(ops the 2021.4 MYRIAD plugin rejects, ops never probed) -> their node names, from the measured table."""
    supported = myriad_supported_ops()
    table = _ops_table()
    known_bad = set(table.get("rejected", {})) | set(table.get("newer_than_reader", []))
    rejected: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    for node in _all_nodes(model.graph):
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        if op in supported:
            continue
        (rejected if op in known_bad else unknown).setdefault(op, []).append(node.name or f"<unnamed {op}>")
    return rejected, unknown


def describe_ops(ops: dict[str, list[str]]) -> str:
    """``op Abs (node '/Abs'; the compiler says: unsupported layer type)`` for each op, '; '-joined."""
    table = _ops_table()
    parts = []
    for op, nodes in sorted(ops.items()):
        if op in table.get("newer_than_reader", []):
            why = f"newer than the 2021.4 ONNX reader (opsets <= {MYRIAD_MAX_OPSET})"
        elif op in table.get("rejected", {}):
            why = f"the compiler says: {table['rejected'][op]}"
        else:
            why = "never probed alone; the compiler decides"
        names = ", ".join(repr(n) for n in nodes[:3]) + (" ..." if len(nodes) > 3 else "")
        parts.append(f"op {op} (node{'s' if len(nodes) > 1 else ''} {names}; {why})")
    return "; ".join(parts)


def check_myriad_ops(model: onnx.ModelProto, source: str | os.PathLike[str] = "model") -> dict[str, list[str]]:
    """Raise UnsupportedOpError naming each op (and node) the 2021.4 MYRIAD plugin is measured to reject.

    Returns the ops that were never probed (the compiler itself decides on those)."""
    rejected, unknown = myriad_op_status(model)
    if rejected:
        raise UnsupportedOpError(
            f"{source}: {describe_ops(rejected)}: not supported by the MyriadX (RVC2) OpenVINO 2021.4 plugin; "
            "replace them with ops listed in edgedeploy/targets/profiles/myriadx_ops.yaml (e.g. GridSample -> a "
            "precomputed warp with Gather or Resize; Hardswish -> x * relu6(x + 3) / 6) or run that part on the host "
            "(BlobConfig(host_fallback=True))")
    return unknown
