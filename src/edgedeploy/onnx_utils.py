"""Small ONNX helpers every stage shares: graph inputs, output probes, SQNR, artifact sizes, opsets.

Neutral and low-level: imports only onnx/numpy and edgedeploy's data types, so exporters, quantizers and
runtimes all use the same helpers instead of growing private copies.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .data import InputSpec


def read_onnx(path: str | os.PathLike[str], load_external_data: bool = False) -> Any:
    """Load an ONNX file; a missing, empty or corrupt file is a ModelLoadError naming it."""
    import onnx

    from .errors import ModelLoadError

    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"ONNX file {p} does not exist; check the path")
    if p.stat().st_size == 0:
        raise ModelLoadError(f"ONNX file {p} is empty; re-export it")
    try:
        return onnx.load(str(p), load_external_data=load_external_data)
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError and friends
        raise ModelLoadError(f"cannot read ONNX file {p} ({type(exc).__name__}); the file is corrupt or not ONNX: "
                             "re-export it") from exc


def onnx_inputs(path_or_model: Any) -> list[InputSpec]:
    """The graph inputs of an ONNX file or ModelProto (initializers excluded)."""
    import onnx
    from onnx import helper

    m = path_or_model if isinstance(path_or_model, onnx.ModelProto) else read_onnx(path_or_model)
    inits = {t.name for t in m.graph.initializer}
    specs = []
    for vi in m.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim)
        specs.append(InputSpec(vi.name, shape, np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))))
    return specs


def opset_of(model: Any) -> int:
    """The default-domain opset of an ONNX ModelProto."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def probe_outputs(path: str | os.PathLike[str], tensors: list[str], dest: str | os.PathLike[str]) -> Path:
    """Copy of an ONNX model that also outputs the named intermediate tensors (for per-layer error)."""
    import onnx

    m = onnx.load(str(path))
    have = {o.name for o in m.graph.output}
    for t in tensors:
        if t not in have:
            m.graph.output.append(onnx.ValueInfoProto(name=t))
    onnx.save(m, str(dest))
    return Path(dest)


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB (inf when identical)."""
    ref = np.asarray(ref, dtype=np.float64)
    noise = float(np.sum((ref - np.asarray(test, dtype=np.float64)) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0.0:
        return float("inf")
    return 10.0 * math.log10(max(signal, 1e-30) / noise)


def cosine_per_sample(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each sample's flattened output (batch first)."""
    a2 = np.asarray(a, np.float64).reshape(len(a), -1)
    b2 = np.asarray(b, np.float64).reshape(len(b), -1)
    return np.sum(a2 * b2, 1) / np.maximum(np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1), 1e-30)


def file_size(path: str | os.PathLike[str]) -> int:
    """Bytes of a model artifact, counting an OpenVINO IR's .bin and ONNX external data beside it."""
    path = Path(path)
    size = path.stat().st_size
    if path.suffix == ".xml" and path.with_suffix(".bin").exists():
        size += path.with_suffix(".bin").stat().st_size
    data = path.with_name(path.name + ".data")
    return size + (data.stat().st_size if data.exists() else 0)


def all_nodes(graph: Any) -> list[Any]:
    """Every node of a graph, including those inside If/Loop sub-graphs."""
    nodes = []
    for node in graph.node:
        nodes.append(node)
        for attr in node.attribute:
            for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                nodes.extend(all_nodes(g))
    return nodes
