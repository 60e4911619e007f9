"""ONNX helpers for quantization: the table of quantizable layers (MACs from the profiler), twins, QDQ folding."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


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


def layers(model_path: Path, input_shapes: list[tuple[int, ...]] | None = None) -> list[Layer]:
    """Quantizable layers of an ONNX model in graph order, with MACs per sample from the profiler."""
    import onnx

    from ...errors import ShapeError
    from ...metrics.profile import profile
    from ...onnx_utils import onnx_inputs

    model = onnx.load(str(model_path))
    shapes = input_shapes or [tuple(d or 1 for d in (1, *s.shape[1:])) for s in onnx_inputs(model)]
    try:
        prof = profile(Path(model_path), shapes if len(shapes) > 1 else shapes[0])
        macs = {row.name: row.macs for row in prof.layers}
    except ShapeError:             # dynamic dims (e.g. sequence length) the graph alone cannot resolve
        macs = {}
    weights = {t.name for t in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type not in QUANTIZABLE_OPS:
            continue
        if node.op_type == "MatMul" and node.input[1] not in weights:
            continue                      # activation x activation MatMul (attention scores): no weights
        out.append(Layer(node.name, node.op_type, module_path(node.name), int(macs.get(node.name, 0)), node.output[0]))
    return out


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
