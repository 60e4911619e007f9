"""ONNX helpers for quantization: torch -> ONNX, the table of quantizable layers, their MACs, layer probes."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ExportError

#: ops whose weights/activations the quantizers turn into int8 (the layers a user can ignore)
QUANTIZABLE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class Layer:
    """One quantizable ONNX node: its name, op, the torch module path it came from, and MACs per sample."""

    name: str
    op: str
    module: str
    macs: int
    output: str


def to_onnx(module: Any, example: dict[str, np.ndarray], path: Path, opset: int = 17,
            dynamic_dims: dict[int, str] | None = None) -> Path:
    """Export a torch module to ONNX (legacy exporter: BN folded, fake-quant as QDQ; batch dim dynamic)."""
    import torch

    from ...errors import ModelRunError

    from ..._io import ensure_dir

    ensure_dir(Path(path).parent)
    names = list(example)
    args = tuple(torch.from_numpy(np.ascontiguousarray(example[n])) for n in names)
    try:
        with torch.no_grad():
            probe = module.eval()(*args)
    except Exception as exc:  # noqa: BLE001 - the user's forward failed on the given input
        shapes = ", ".join(f"{n}: {tuple(a.shape)}" for n, a in zip(names, args))
        raise ModelRunError(f"{type(module).__name__} fails on an input of shape {shapes}: {exc}; pass "
                            "example_inputs (or data) shaped like the model's real input") from exc
    n_out = len(probe) if isinstance(probe, (tuple, list)) else 1
    outs = ["output"] if n_out == 1 else [f"output{i}" for i in range(n_out)]
    axes: dict[str, dict[int, str]] = {n: {0: "batch", **(dynamic_dims or {})} for n in names}
    axes.update({n: {0: "batch"} for n in outs})
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), args, str(path), dynamo=False, opset_version=opset,
                              input_names=names, output_names=outs, dynamic_axes=axes, do_constant_folding=True)
    except Exception as exc:  # noqa: BLE001 - any exporter failure is reported with the model at fault
        raise ExportError(f"could not export {type(module).__name__} to ONNX for quantization: {exc}; "
                          "export it yourself and pass the .onnx file") from exc
    return path


def module_path(node_name: str) -> str:
    """Torch module path of a node named by the ONNX exporter.

    ``/res/res.3/Conv`` -> ``res.3``; ``/bert/encoder/layer.0/attention/self/query/MatMul`` ->
    ``bert.encoder.layer.0.attention.self.query`` (a scope that repeats its parent's name is merged).
    """
    parts = [p for p in node_name.split("/") if p][:-1]
    if not parts:
        return node_name
    path, last = parts[0], parts[0]
    for p in parts[1:]:
        path = path[: len(path) - len(last)] + p if p.startswith(last + ".") else f"{path}.{p}"
        last = p
    return path


def _dims(vi: Any) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1
            for d in vi.type.tensor_type.shape.dim]


def layers(model: Any) -> list[Layer]:
    """Quantizable layers of an ONNX model in graph order, with MACs per sample (unknown dims taken as 1)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    shapes = {vi.name: _dims(vi) for vi in list(g.value_info) + list(g.input) + list(g.output)}
    shapes.update({t.name: list(t.dims) for t in g.initializer})
    out = []
    for node in g.node:
        if node.op_type not in QUANTIZABLE_OPS:
            continue
        w = shapes.get(node.input[1]) if len(node.input) > 1 else None
        y = shapes.get(node.output[0])
        if node.op_type == "MatMul" and node.input[1] not in {t.name for t in g.initializer}:
            continue                      # activation x activation MatMul (attention scores): no weights
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        out.append(Layer(node.name, node.op_type, module_path(node.name), _macs(node.op_type, w, y, trans_b),
                         node.output[0]))
    return out


def _macs(op: str, w: list[int] | None, y: list[int] | None, trans_b: bool = False) -> int:
    if not w or not y:
        return 0
    per_sample = math.prod(y[1:]) if len(y) > 1 else math.prod(y)
    if op == "Conv":
        return per_sample * math.prod(w[1:])
    if op == "ConvTranspose":
        return math.prod(y[1:]) * w[0] * math.prod(w[2:]) // max(w[1], 1)
    return per_sample * (w[1] if op == "Gemm" and trans_b else w[0])   # outputs x reduction dim


def probe_outputs(path: Path, tensors: list[str], dest: Path) -> Path:
    """Copy of an ONNX model that also outputs the named intermediate tensors (for per-layer error)."""
    import onnx

    m = onnx.load(str(path))
    have = {o.name for o in m.graph.output}
    for t in tensors:
        if t not in have:
            m.graph.output.append(onnx.ValueInfoProto(name=t))
    onnx.save(m, str(dest))
    return dest


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB (inf when identical)."""
    ref = ref.astype(np.float64)
    noise = float(np.sum((ref - test.astype(np.float64)) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0.0:
        return float("inf")
    return 10.0 * math.log10(max(signal, 1e-30) / noise)


def file_size(path: Path) -> int:
    """Bytes of a model artifact, counting an OpenVINO IR's .bin and ONNX external data beside it."""
    path = Path(path)
    size = path.stat().st_size
    if path.suffix == ".xml" and path.with_suffix(".bin").exists():
        size += path.with_suffix(".bin").stat().st_size
    data = path.with_name(path.name + ".data")
    return size + (data.stat().st_size if data.exists() else 0)


def match_outputs(fp32_layers: list[Layer], twin_path: Path) -> dict[str, tuple[str, bool]]:
    """For each FP32 layer: the tensor carrying its output in the quantized twin, and whether it runs in int8.

    Quantizers keep a layer's output tensor name (QDQ and dynamic); a re-exported twin (torch backend)
    is matched by position among its quantizable nodes instead.
    """
    import onnx

    g = onnx.load(str(twin_path)).graph
    producer = {o: n for n in g.node for o in n.output}

    def int8(tensor: str, hops: int = 4) -> bool:
        node = producer.get(tensor)
        for _ in range(hops):
            if node is None:
                return False
            if node.op_type in ("MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul", "DynamicQuantizeMatMul"):
                return True
            if node.op_type in QUANTIZABLE_OPS:
                w = producer.get(node.input[1]) if len(node.input) > 1 else None
                return w is not None and w.op_type == "DequantizeLinear"
            node = next((producer[i] for i in node.input if i in producer), None)
        return False

    if all(layer.output in producer for layer in fp32_layers):
        return {layer.name: (layer.output, int8(layer.output)) for layer in fp32_layers}
    twin_nodes = [n for n in g.node if n.op_type in QUANTIZABLE_OPS]
    if len(twin_nodes) != len(fp32_layers):
        return {}
    return {layer.name: (n.output[0], int8(n.output[0])) for layer, n in zip(fp32_layers, twin_nodes)}


def fold_weight_quantizers(path: Path) -> Path:
    """Store constant weights of a QDQ model as int8 initializers (QuantizeLinear on a constant is folded)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    for n in g.node:                      # the exporter routes shared zero points through Identity nodes
        if n.op_type == "Identity" and n.input[0] in inits:
            inits[n.output[0]] = inits[n.input[0]]
    consumers: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    keep = []
    for n in g.node:
        if n.op_type == "QuantizeLinear" and n.input[0] in inits and all(i in inits for i in n.input[1:3]):
            w = numpy_helper.to_array(inits[n.input[0]]).astype(np.float64)
            scale = numpy_helper.to_array(inits[n.input[1]]).astype(np.float64)
            zp = numpy_helper.to_array(inits[n.input[2]])
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            if scale.ndim == 1 and scale.size > 1:
                shape = [1] * w.ndim
                shape[axis] = -1
                scale, zpf = scale.reshape(shape), zp.astype(np.float64).reshape(shape)
            else:
                zpf = zp.astype(np.float64)
            info = np.iinfo(zp.dtype)
            q = np.clip(np.round(w / scale) + zpf, info.min, info.max).astype(zp.dtype)
            g.initializer.append(numpy_helper.from_array(q, n.output[0]))
            if consumers.get(n.input[0], 0) == 1 and inits[n.input[0]] in g.initializer:
                g.initializer.remove(inits[n.input[0]])
            continue
        keep.append(n)
    del g.node[:]
    g.node.extend(keep)
    onnx.save(m, str(path))
    return path
