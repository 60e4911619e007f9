"""Bring an ONNX model down to an older opset (the MyriadX 2021.4 reader knows opsets <= 13).

``onnx.version_converter`` first; where it has no down-adapter (e.g. Relu 14 -> 13), ops whose newer versions
only added element types or defaulted attributes are relabelled, and the caller re-checks the result on
ONNX Runtime.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ExportError
from ..onnx_utils import all_nodes as _all_nodes
from ..onnx_utils import opset_of as _opset

if TYPE_CHECKING:
    import onnx

MYRIAD_MAX_OPSET = 13     # newest ONNX opset the 2021.4 reader knows (it says so for newer ones)


# Op versions newer than 13 (the newest opset the 2021.4 ONNX reader knows) that only added element
# types, or an attribute whose default keeps the old behaviour (checked in ``_relabel_ok``), per the ONNX
# operator changelog. onnx.version_converter has no down-adapter for most of them (e.g. Relu 14 -> 13).
_T = {23, 24, 25}   # opsets 23-25 only added element types (float8/4-bit) to these ops
_COMPATIBLE_SINCE = {
    "Relu": {14}, "LeakyRelu": {16}, "PRelu": {16}, "Add": {14}, "Sub": {14}, "Mul": {14}, "Div": {14},
    "Identity": {14, 16, 19, 21} | _T, "Where": {16}, "Pow": {15}, "Equal": {19}, "Cast": {19, 21, 23},
    "Constant": {19, 21} | _T, "Reshape": {14, 19, 21} | _T, "Flatten": {21} | _T, "Transpose": {21} | _T,
    "Squeeze": {21} | _T, "Unsqueeze": {21} | _T, "BatchNormalization": {14, 15}, "Shape": {15, 19, 21} | _T,
    "Conv": {22}, "ConvTranspose": {22}, "MaxPool": {22}, "AveragePool": {19, 22}, "GlobalAveragePool": {22},
    "GlobalMaxPool": {22}, "Elu": {22}, "Softplus": {22}, "HardSigmoid": {22}, "InstanceNormalization": {22},
    "Pad": {18, 19, 21} | _T,
}
# attributes added after opset 13, with the values that keep the older behaviour (absent is fine too)
_DEFAULT_ATTRS = {"allowzero": {0}, "training_mode": {0}, "saturate": {1}, "start": {0}, "end": set(),
                  "mode": {b"constant", b"reflect", b"edge"}}
_NEW_INPUTS = {"Pad": 3}      # Pad 18 added an optional 4th input (axes): relabel only without it


def to_opset(model: onnx.ModelProto, src: Path, notes: list[str]) -> onnx.ModelProto:
    """Bring the model to opset <= 13: onnx.version_converter, else relabel ops that did not change meaning."""
    import onnx
    from onnx import version_converter

    opset = _opset(model)
    if opset <= MYRIAD_MAX_OPSET:
        return model
    try:
        converted = version_converter.convert_version(model, MYRIAD_MAX_OPSET)
        onnx.checker.check_model(converted)
        notes.append(f"converted from opset {opset} to {MYRIAD_MAX_OPSET} with onnx.version_converter")
        return converted
    except Exception as exc:   # no down-adapter for some op: try the compatible relabel below
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[-1][:160]}"
    changed = []
    for node in _all_nodes(model.graph):
        if node.domain not in ("", "ai.onnx"):
            continue
        now = onnx.defs.get_schema(node.op_type, opset).since_version
        old = onnx.defs.get_schema(node.op_type, MYRIAD_MAX_OPSET).since_version
        if now != old and not _relabel_ok(node, old, now):
            changed.append(f"{node.op_type} (node {node.name!r}, changed in opset {now})")
    if changed:
        raise ExportError(f"{src} uses opset {opset}; the 2021.4 MYRIAD reader knows opsets up to {MYRIAD_MAX_OPSET} and "
                          f"{'; '.join(sorted(set(changed))[:4])} cannot be converted ({reason}); re-export with "
                          f"opset_version={MYRIAD_MAX_OPSET} (e.g. OnnxConfig(exporter='torchscript', "
                          f"opset={MYRIAD_MAX_OPSET}))")
    relabeled = onnx.ModelProto()
    relabeled.CopyFrom(model)
    for op in relabeled.opset_import:
        if op.domain in ("", "ai.onnx"):
            op.version = MYRIAD_MAX_OPSET
    relabeled.ir_version = min(relabeled.ir_version, 7)     # the IR version that goes with opset 13
    try:
        onnx.checker.check_model(relabeled)
    except Exception as exc:
        raise ExportError(f"{src}: relabeling opset {opset} as {MYRIAD_MAX_OPSET} gives an invalid model ({exc}); "
                          f"re-export with opset_version={MYRIAD_MAX_OPSET}") from exc
    notes.append(f"relabeled opset {opset} as {MYRIAD_MAX_OPSET}: every op's newer version only added types or "
                 "defaulted attributes (checked again on ONNX Runtime below)")
    return relabeled


def _relabel_ok(node: Any, old: int, now: int) -> bool:
    """Whether ``node`` means the same at the older opset: every newer version only added types/defaults."""
    from onnx import helper

    newer = {v for v in _COMPATIBLE_SINCE.get(node.op_type, set()) if old < v <= now}
    if max(newer, default=None) != now:
        return False
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if attr.name == "dilations" and any(d != 1 for d in value):
            return False
        if attr.name in _DEFAULT_ATTRS and value not in _DEFAULT_ATTRS[attr.name]:
            return False
    return len(node.input) <= _NEW_INPUTS.get(node.op_type, len(node.input))
