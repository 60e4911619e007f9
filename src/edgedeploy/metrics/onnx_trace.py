"""Trace an ONNX graph with ONNX shape inference into the same events the torch tracer emits."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelLoadError, ShapeError
from .aggregate import ACT, BUFFER, CONST, INPUT, PARAM, OpEvent, TensorRef, Trace
from .counting import (VIEWS_AND_FACTORIES, MacRules, OpCost, conv_cost, elementwise_cost, matmul_cost, numel,
                       window_pool_cost)

# ONNX element type -> (itemsize, floating)
_DTYPES = {1: (4, True), 2: (1, False), 3: (1, False), 4: (2, False), 5: (2, False), 6: (4, False), 7: (8, False),
           9: (1, False), 10: (2, True), 11: (8, True), 12: (4, False), 13: (8, False), 16: (2, True)}
# op -> (index of the data input, index of the weight input) for conv-like / matmul-like ops
_CONV_LIKE = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3), "ConvTranspose": (0, 1)}
_MATMUL_LIKE = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "Gemm": (0, 1)}
_QDQ = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
_FACTORIES = {"Shape", "Size", "Constant", "ConstantOfShape", "Range"}


def _load(path: Path) -> Any:
    import onnx

    if not path.is_file():
        raise ModelLoadError(f"ONNX file {path} does not exist; check the path")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and others for corrupt files
        raise ModelLoadError(f"cannot read ONNX file {path}: {type(exc).__name__}: {exc}; "
                             "re-export the model (edgedeploy export) or check the file is complete") from exc


def _set_input_shapes(model: Any, inputs_or_shape: Any) -> None:
    """Overwrite graph-input dims with the given shape(s) (for dynamic axes)."""
    if inputs_or_shape is None:
        return
    shapes = [inputs_or_shape] if all(isinstance(d, int) for d in inputs_or_shape) else list(inputs_or_shape)
    shapes = [tuple(getattr(s, "shape", s)) for s in shapes]
    init_names = {i.name for i in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in init_names]
    if len(shapes) != len(graph_inputs):
        raise ShapeError(f"the ONNX model has {len(graph_inputs)} inputs but {len(shapes)} shapes were given")
    for vi, shape in zip(graph_inputs, shapes):
        dims = vi.type.tensor_type.shape.dim
        if len(dims) != len(shape):
            raise ShapeError(f"ONNX input {vi.name!r} has rank {len(dims)}, the given shape {shape} has rank {len(shape)}")
        for d, v in zip(dims, shape):
            if d.HasField("dim_value") and d.dim_value != v:
                raise ShapeError(f"ONNX input {vi.name!r} has fixed shape "
                                 f"{[x.dim_value for x in dims]}; the given shape {shape} does not match")
            d.dim_value = int(v)


def _attr(node: Any, name: str, default: Any = None) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _cost(node: Any, shp: dict[str, tuple[int, ...]], rules: MacRules) -> OpCost | None:
    op, ins, outs = node.op_type, list(node.input), list(node.output)
    out_shape = shp.get(outs[0], ()) if outs else ()
    if op in _CONV_LIKE:
        xi, wi = _CONV_LIKE[op]
        has_bias = len(ins) > (8 if op == "QLinearConv" else 2) and bool(ins[-1])
        return conv_cost(out_shape, shp[ins[wi]], shp[ins[xi]], op == "ConvTranspose", has_bias, rules)
    if op in _MATMUL_LIKE:
        a = shp[ins[_MATMUL_LIKE[op][0]]]
        k = a[0] if op == "Gemm" and _attr(node, "transA", 0) else a[-1]
        return matmul_cost(out_shape, k, op == "Gemm" and len(ins) > 2 and bool(ins[2]))
    if op in ("MaxPool", "AveragePool", "LpPool"):
        return window_pool_cost(out_shape, _attr(node, "kernel_shape", [1]), rules)
    if op in _QDQ:
        return OpCost(0, numel(out_shape))
    in_shape = shp.get(ins[0]) if ins and ins[0] else None
    return elementwise_cost(op, out_shape, in_shape, rules)


def trace_onnx(path: Path, inputs_or_shape: Any, rules: MacRules) -> Trace:
    """Shape-infer ``path`` and emit one event per node (one layer row per node)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = _load(path)
    _set_input_shapes(model, inputs_or_shape)
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"ONNX shape inference failed for {path}: {exc}; run onnx.checker on the file") from exc
    g = model.graph
    shp: dict[str, tuple[int, ...]] = {}
    dtype: dict[str, tuple[int, bool]] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        shp[vi.name] = tuple(dims)
        dtype[vi.name] = _DTYPES.get(tt.elem_type, (4, True))
    inits = {i.name: i for i in g.initializer}
    kinds: dict[str, str] = {}
    for name, init in inits.items():
        arr = numpy_helper.to_array(init)
        shp[name], dtype[name] = tuple(arr.shape), (arr.dtype.itemsize, bool(np.issubdtype(arr.dtype, np.floating)))
        kinds[name] = PARAM if dtype[name][1] or arr.size > 16 else CONST
    for node in g.node:
        if node.op_type in ("BatchNormalization",):
            for n in node.input[3:5]:
                kinds[n] = BUFFER
        if node.op_type == "Constant":
            kinds[node.output[0]] = CONST
    keys = {n: i for i, n in enumerate(dict.fromkeys([*shp, *(o for nd in g.node for o in nd.output)]))}

    def ref(name: str, kind: str) -> TensorRef:
        s = shp.get(name)
        if s is None or any(d < 0 for d in s):
            raise ShapeError(f"ONNX tensor {name!r} has unknown shape {s}; pass --input with concrete dims")
        size, fl = dtype.get(name, (4, True))
        return TensorRef(keys[name], s, size, fl, kind)

    in_refs = [ref(vi.name, INPUT) for vi in g.input if vi.name not in inits]
    kinds.update({r: INPUT for r in (vi.name for vi in g.input if vi.name not in inits)})
    events, unsupported, shapes = [], {}, {}
    for i, node in enumerate(g.node):
        if node.op_type in VIEWS_AND_FACTORIES:
            # a view aliases its input's storage (and keeps its kind); factories and shape ops make constants
            src = node.input[0] if node.input and node.op_type not in _FACTORIES else None
            for o in node.output:
                if src is not None and src in keys:
                    keys[o], kinds[o] = keys[src], kinds.get(src, ACT)
                else:
                    kinds[o] = CONST
            continue
        row = node.name or f"{node.op_type}_{i}"
        ins = [ref(n, kinds.get(n, ACT)) for n in node.input if n and n in shp]
        outs = [ref(n, ACT) for n in node.output if n]
        for n in node.output:
            kinds.setdefault(n, ACT)
        cost = _cost(node, shp, rules)
        if cost is None:
            unsupported[node.op_type] = unsupported.get(node.op_type, 0) + 1
        events.append(OpEvent(node.op_type, row, node.op_type, ins, outs, cost or OpCost(), cost is not None))
        shapes[row] = ([r.shape for r in ins if r.kind in (INPUT, ACT)], [r.shape for r in outs])
    params = [n for n, k in kinds.items() if k == PARAM and n in inits]
    stored = list(inits)
    return Trace(
        events=events, inputs=in_refs, output_keys={keys[o.name] for o in g.output if o.name in keys}, shapes=shapes,
        unsupported=unsupported, params=sum(int(np.prod(shp[n])) for n in params),
        weight_numel=sum(int(np.prod(shp[n])) for n in stored),
        weight_float_numel=sum(int(np.prod(shp[n])) for n in stored if dtype[n][1]),
        weight_other_bytes=sum(int(np.prod(shp[n])) * dtype[n][0] for n in stored if not dtype[n][1]),
    )
