"""Bake input preprocessing (U8/FP16 input, BGR->RGB, mean/scale) into an ONNX graph.

Devices such as the MyriadX take raw camera frames (U8, often BGR); the old ``compile_tool -ip U8``
and Model Optimizer's ``--mean_values/--scale_values/--reverse_input_channels`` did this
conversion inside the compiled network. Doing it in the ONNX graph works for any compiler.
The order follows Model Optimizer and OpenVINO's PrePostProcessor: cast to float, reverse the
channels, subtract ``mean``, divide by ``scale`` (``mean``/``scale`` are in the model's channel
order, i.e. after the reversal).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, ShapeError

if TYPE_CHECKING:
    import onnx

_INPUT_TYPES = {"u8": "uint8", "fp16": "float16", "fp32": "float32"}
PREPROCESSED_INPUT_KEY = "edgedeploy.preprocessed_input"   # metadata naming the input that was baked


@dataclass(frozen=True)
class Preprocess:
    """What the device feeds the model and how to turn it into the model's float input."""

    input_type: str = "u8"                        # u8 | fp16 | fp32: element type of the new input
    mean: float | tuple[float, ...] | None = None  # subtracted per channel (model channel order)
    scale: float | tuple[float, ...] | None = None  # divided per channel, after the mean
    reverse_channels: bool = False                 # BGR frames -> RGB model (or the other way)
    layout: str = "NCHW"                           # NCHW or NHWC: where the channel axis is

    def __post_init__(self) -> None:
        if self.input_type.lower() not in _INPUT_TYPES:
            raise ConfigError(f"input_type {self.input_type!r} is unknown; choose one of {sorted(_INPUT_TYPES)}")
        if self.layout.upper() not in ("NCHW", "NHWC"):
            raise ConfigError(f"layout {self.layout!r} is unknown; choose NCHW or NHWC")
        if self.scale is not None and np.any(np.asarray(self.scale, dtype=np.float64) == 0):
            raise ConfigError(f"scale {self.scale!r} contains 0; scale values divide the input")

    @property
    def is_identity(self) -> bool:
        return (self.input_type.lower() == "fp32" and self.mean is None and self.scale is None
                and not self.reverse_channels)

    @property
    def channel_axis(self) -> int:
        return 1 if self.layout.upper() == "NCHW" else 3

    def apply_numpy(self, frames: np.ndarray) -> np.ndarray:
        """The same preprocessing in numpy (float32): the reference the baked graph must match."""
        x = np.asarray(frames).astype(np.float32)
        ax = self.channel_axis
        if self.reverse_channels:
            x = np.flip(x, axis=ax)
        shape = [1] * x.ndim
        shape[ax] = -1
        if self.mean is not None:
            x = x - np.asarray(self.mean, dtype=np.float32).reshape(shape)
        if self.scale is not None:
            x = x / np.asarray(self.scale, dtype=np.float32).reshape(shape)
        return np.ascontiguousarray(x, dtype=np.float32)


def bake_preprocessing(model: onnx.ModelProto, pre: Preprocess, input_name: str | None = None) -> onnx.ModelProto:
    """Return a copy of ``model`` whose input takes raw frames and does ``pre`` inside the graph."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    if pre.is_identity:
        return out
    graph = out.graph
    inits = {i.name for i in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in inits]
    if input_name is None:
        if len(real_inputs) != 1:
            names = [i.name for i in real_inputs]
            raise ConfigError(f"the model has {len(real_inputs)} inputs {names}; name the image input to preprocess")
        inp = real_inputs[0]
    else:
        matches = [i for i in real_inputs if i.name == input_name]
        if not matches:
            raise ConfigError(f"input {input_name!r} not found; the model's inputs are {[i.name for i in real_inputs]}")
        inp = matches[0]
    ttype = inp.type.tensor_type
    if ttype.elem_type != onnx.TensorProto.FLOAT:
        raise ShapeError(f"input {inp.name!r} is {onnx.TensorProto.DataType.Name(ttype.elem_type)}, "
                         "not FLOAT; preprocessing can only be baked in front of a float32 input")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
    channels = dims[pre.channel_axis] if len(dims) == 4 else None
    if len(dims) != 4:
        raise ShapeError(f"input {inp.name!r} has rank {len(dims)}; baked preprocessing needs a 4-D image "
                         f"input in {pre.layout} layout")
    if pre.reverse_channels and not channels:
        raise ShapeError(f"input {inp.name!r} has no fixed channel count at axis {pre.channel_axis}; "
                         "reverse_channels needs a static channel dimension (export with a fixed shape)")
    _check_per_channel("mean", pre.mean, channels)
    _check_per_channel("scale", pre.scale, channels)

    name = inp.name
    used = {o for n in graph.node for o in n.output} | inits | {i.name for i in graph.input}
    prefix = _unique(f"{name}_pre", used)
    # Everything that read the float input now reads the preprocessed tensor.
    current = f"{prefix}_float"
    for node in graph.node:
        node.input[:] = [current if i == name else i for i in node.input]
    for o in graph.output:
        if o.name == name:
            raise ConfigError(f"input {name!r} is also a graph output; preprocessing cannot be baked in front of it")

    nodes, consts = [], []
    stage = name
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(_INPUT_TYPES[pre.input_type.lower()]))
    steps: list[tuple[str, Any]] = []
    if elem != onnx.TensorProto.FLOAT:
        steps.append(("cast", None))
    if pre.reverse_channels:
        steps.append(("reverse", None))
    if pre.mean is not None:
        steps.append(("mean", pre.mean))
    if pre.scale is not None:
        steps.append(("scale", pre.scale))
    shape = [1, 1, 1, 1]
    shape[pre.channel_axis] = -1
    for k, (kind, value) in enumerate(steps):
        dst = current if k == len(steps) - 1 else f"{prefix}_after_{kind}"
        if kind == "cast":
            nodes.append(helper.make_node("Cast", [stage], [dst], name=f"{prefix}_cast", to=onnx.TensorProto.FLOAT))
        elif kind == "reverse":
            idx = numpy_helper.from_array(np.arange(channels - 1, -1, -1, dtype=np.int64), f"{prefix}_rev_idx")
            consts.append(idx)
            nodes.append(helper.make_node("Gather", [stage, idx.name], [dst], name=f"{prefix}_reverse",
                                          axis=pre.channel_axis))
        elif kind == "mean":
            c = numpy_helper.from_array(np.asarray(value, np.float32).reshape(_bshape(value, shape)), f"{prefix}_mean")
            consts.append(c)
            nodes.append(helper.make_node("Sub", [stage, c.name], [dst], name=f"{prefix}_sub_mean"))
        else:
            inv = (1.0 / np.asarray(value, np.float64)).astype(np.float32)
            c = numpy_helper.from_array(inv.reshape(_bshape(value, shape)), f"{prefix}_inv_scale")
            consts.append(c)
            nodes.append(helper.make_node("Mul", [stage, c.name], [dst], name=f"{prefix}_mul_scale"))
        stage = dst
    ttype.elem_type = elem
    meta = out.metadata_props.add()
    meta.key, meta.value = PREPROCESSED_INPUT_KEY, name
    graph.initializer.extend(consts)
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old)
    _ensure_opset(out, 7)
    onnx.checker.check_model(out)
    return out


def _bshape(value: Any, shape: list[int]) -> list[int]:
    return shape if np.ndim(value) else [1, 1, 1, 1]


def _check_per_channel(what: str, value: Any, channels: int | None) -> None:
    if value is None or np.ndim(value) == 0:
        return
    n = len(value)
    if n != 1 and channels is not None and n != channels:
        raise ConfigError(f"{what} has {n} values but the input has {channels} channels; give one value "
                          "per channel or a single value")


def _unique(base: str, used: set[str]) -> str:
    name, k = base, 0
    while any(u.startswith(name) for u in used):
        k += 1
        name = f"{base}{k}"
    return name


def _ensure_opset(model: onnx.ModelProto, minimum: int) -> None:
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx") and op.version < minimum:
            raise ConfigError(f"the model uses ONNX opset {op.version}; baked preprocessing needs opset >= "
                              f"{minimum}; re-export with opset_version={minimum}")


def run_with_and_without(original: onnx.ModelProto, baked: onnx.ModelProto, pre: Preprocess,
                         frames: np.ndarray | None = None, seed: int = 0,
                         ) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Run ``baked`` on raw frames and ``original`` on the same frames preprocessed in numpy (ONNX Runtime).

    Returns (baked outputs, original outputs, output names). Other inputs get the same seeded noise.
    """
    from ..runtime import load

    sess_o, sess_b = (load(m, runtime="onnxruntime", providers=["CPUExecutionProvider"]).session
                      for m in (original, baked))
    rng = np.random.default_rng(seed)
    marked = {p.key: p.value for p in baked.metadata_props}.get(PREPROCESSED_INPUT_KEY)
    changed = marked or sess_b.get_inputs()[0].name      # unmarked: identity preprocessing
    feeds_o, feeds_b = {}, {}
    for meta in sess_b.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in meta.shape]
        if meta.name == changed:
            raw = frames if frames is not None else rng.integers(0, 256, size=shape).astype(np.float32)
            raw = np.asarray(raw).astype(_INPUT_TYPES[pre.input_type.lower()])
            feeds_b[meta.name], feeds_o[meta.name] = raw, pre.apply_numpy(raw)
        else:
            feeds_b[meta.name] = feeds_o[meta.name] = rng.standard_normal(shape).astype(np.float32)
    names = [o.name for o in sess_b.get_outputs()]
    return sess_b.run(None, feeds_b), sess_o.run(None, feeds_o), names


def preprocessing_parity(original: onnx.ModelProto, baked: onnx.ModelProto, pre: Preprocess,
                         frames: np.ndarray | None = None, seed: int = 0) -> float:
    """Max abs difference between ``baked`` on raw frames and ``original`` on numpy-preprocessed frames (ORT)."""
    got, ref, _ = run_with_and_without(original, baked, pre, frames, seed)
    return float(max(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) for a, b in zip(got, ref)))
