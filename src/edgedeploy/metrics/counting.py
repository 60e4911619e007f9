"""Counting conventions: MACs and element-wise ops per operator, shared by the torch and ONNX tracers.

Conventions (``MacRules()``, the default, matches how published model totals are quoted):
- A MAC is one multiply-accumulate of a linear operator: convolution (out_elements x Cin/groups x kernel
  area; transposed: in_elements x Cout/groups x kernel area), linear/matmul/bmm (out_elements x K), and the
  two matmuls of attention (B·L·S·E + B·L·S·Ev). Bias adds initialize the accumulator and are not MACs.
- Everything else that computes (normalization, activations, element-wise arithmetic, pooling, softmax,
  interpolation, grid sampling) is counted as ``elem_ops`` (one per output element per elementary op), not MACs.
  ``MacRules`` can fold them into MACs per category, to match another counter.
- ``MacRules.thop()`` reproduces pytorch-OpCounter (thop), which the tutorial's layer tables use:
  BatchNorm = 4 ops per element ((x - mean) / std * gamma + beta), ReLU = 0, conv bias = 1 per output element.
- Pure data movement (views, cat, pixel_shuffle, pad, copies) costs 0 ops but is still a layer with traffic.
- An operator with no rule is reported in ``Profile.unsupported`` (counted as 0), never silently dropped.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Shape = Sequence[int]


@dataclass(frozen=True)
class MacRules:
    """How many MACs per output element each non-linear category contributes (0 = report as elem_ops only)."""

    norm: float = 0.0          # BatchNorm/LayerNorm/GroupNorm/InstanceNorm
    activation: float = 0.0    # ReLU, GELU, SiLU, sigmoid, ...
    elementwise: float = 0.0   # add, mul, sub, div, ...
    pooling: float = 0.0       # per output element (x kernel area for window pooling)
    conv_bias: float = 0.0     # per output element of a convolution with bias

    @classmethod
    def thop(cls) -> "MacRules":
        """pytorch-OpCounter's conventions (used by the tutorial's tables): BN = 4/elem, ReLU = 0, bias = 1."""
        return cls(norm=4.0, activation=0.0, elementwise=0.0, pooling=0.0, conv_bias=1.0)

    @classmethod
    def named(cls, name: str) -> "MacRules":
        """Rules by name: 'standard' or 'thop'."""
        from ..errors import ConfigError

        presets = {"standard": cls(), "thop": cls.thop()}
        if name not in presets:
            raise ConfigError(f"unknown MAC counting convention {name!r}; choose one of {sorted(presets)}")
        return presets[name]


@dataclass(frozen=True)
class OpCost:
    """Cost of one operator call."""

    macs: int = 0
    elem_ops: int = 0


def numel(shape: Shape) -> int:
    """Number of elements of a shape."""
    return math.prod(int(d) for d in shape)


def conv_cost(out_shape: Shape, weight_shape: Shape, in_shape: Shape, transposed: bool, has_bias: bool,
              rules: MacRules) -> OpCost:
    """Convolution: out x Cin/g x k (regular) or in x Cout/g x k (transposed); weight is [O, I/g, *k] / [I, O/g, *k]."""
    per = int(weight_shape[1]) * numel(weight_shape[2:])
    macs = numel(in_shape) * per if transposed else numel(out_shape) * per
    bias = numel(out_shape) if has_bias else 0
    return OpCost(macs + round(rules.conv_bias * bias), bias)


def matmul_cost(out_shape: Shape, k: int, has_bias: bool = False) -> OpCost:
    """(Batched) matrix product: one MAC per output element per reduction step."""
    n = numel(out_shape)
    return OpCost(n * int(k), n if has_bias else 0)


def attention_cost(q_shape: Shape, k_shape: Shape, v_shape: Shape) -> OpCost:
    """Scaled dot-product attention: Q·Kᵀ and softmax(·)·V; softmax ~3 element ops per score."""
    batch = numel(q_shape[:-2])
    L, E = int(q_shape[-2]), int(q_shape[-1])
    S, Ev = int(k_shape[-2]), int(v_shape[-1])
    return OpCost(batch * L * S * (E + Ev), 4 * batch * L * S)


# Element-wise categories: name -> (category, elementary ops per output element)
ELEMENTWISE: dict[str, tuple[str, float]] = {
    **{n: ("activation", 1.0) for n in (
        "relu", "relu6", "leaky_relu", "hardtanh", "clamp", "clamp_min", "clamp_max", "threshold", "prelu",
        "hardswish", "hardsigmoid", "sigmoid", "tanh", "gelu", "silu", "mish", "elu", "selu", "celu",
        "softplus", "softsign", "log_sigmoid", "glu", "erf",
        # ONNX spellings
        "Relu", "LeakyRelu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "Gelu", "Elu", "Selu",
        "Softplus", "Softsign", "PRelu", "Mish", "Erf")},
    **{n: ("elementwise", 1.0) for n in (
        "add", "sub", "rsub", "mul", "div", "neg", "abs", "pow", "sqrt", "rsqrt", "exp", "log", "log2",
        "reciprocal", "maximum", "minimum", "where", "sign", "floor", "ceil", "round", "trunc", "remainder",
        "fmod", "square", "sin", "cos", "lerp", "addcmul", "addcdiv", "masked_fill", "eq", "ne", "lt", "le",
        "gt", "ge", "logical_and", "logical_or", "logical_not", "bitwise_and", "bitwise_not", "isnan",
        "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Pow", "Sqrt", "Reciprocal", "Exp", "Log", "Max", "Min",
        "Where", "Sign", "Floor", "Ceil", "Round", "Mod", "Sin", "Cos", "Equal", "Less", "Greater",
        "LessOrEqual", "GreaterOrEqual", "And", "Or", "Not", "IsNaN")},
    **{n: ("norm", 2.0) for n in ("batch_norm", "native_batch_norm", "_native_batch_norm_legit_no_training",
                                  "_native_batch_norm_legit", "BatchNormalization")},
    **{n: ("norm", 5.0) for n in ("layer_norm", "native_layer_norm", "group_norm", "native_group_norm",
                                  "instance_norm", "rms_norm", "_fused_rms_norm", "LayerNormalization",
                                  "GroupNormalization", "InstanceNormalization", "RMSNormalization")},
    **{n: ("softmax", 3.0) for n in ("softmax", "_softmax", "log_softmax", "_log_softmax",
                                     "Softmax", "LogSoftmax")},
}

# Reductions: cost is one op per INPUT element.
REDUCTIONS = frozenset({
    "mean", "sum", "amax", "amin", "max", "min", "var", "std", "var_mean", "std_mean", "norm", "linalg_vector_norm",
    "argmax", "argmin", "prod", "logsumexp", "cumsum", "topk", "sort", "all", "any",
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceL1", "ArgMax", "ArgMin",
    "TopK", "CumSum", "ReduceLogSumExp",
})

# Pooling with a window: cost = output elements x window area; global/adaptive pooling = input elements.
WINDOW_POOLS = frozenset({"max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices",
                          "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d",
                          "MaxPool", "AveragePool", "LpPool"})
GLOBAL_POOLS = frozenset({"adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "_adaptive_avg_pool2d",
                          "adaptive_max_pool2d", "adaptive_max_pool1d", "GlobalAveragePool", "GlobalMaxPool"})

# Resampling: ops per output element by mode.
RESAMPLE = {
    "upsample_nearest1d": 0, "upsample_nearest2d": 0, "upsample_nearest3d": 0, "_upsample_nearest_exact2d": 0,
    "upsample_linear1d": 2, "upsample_bilinear2d": 4, "_upsample_bilinear2d_aa": 4, "upsample_trilinear3d": 8,
    "upsample_bicubic2d": 16, "grid_sampler": 4, "grid_sampler_2d": 4, "grid_sampler_3d": 8,
    "Resize": 4, "Upsample": 4, "GridSample": 4, "RoiAlign": 4,
}

# Zero-compute ops that still move data (a copy is made): they become layers with traffic.
DATA_MOVEMENT = frozenset({
    "cat", "concat", "stack", "hstack", "vstack", "pixel_shuffle", "pixel_unshuffle", "constant_pad_nd", "pad",
    "reflection_pad1d", "reflection_pad2d", "replication_pad2d", "clone", "contiguous", "_to_copy", "to", "copy",
    "copy_", "repeat", "repeat_interleave", "flip", "roll", "index", "index_select", "gather", "scatter",
    "index_copy", "index_put", "scatter_add",
    "embedding", "masked_select", "channel_shuffle", "native_channel_shuffle", "tile", "zeros_like", "ones_like",
    "full_like", "empty_like", "fill", "fill_", "zero_", "type_as", "lift_fresh", "lift_fresh_copy", "nonzero",
    "Concat", "DepthToSpace", "SpaceToDepth", "Pad", "Gather", "GatherElements", "GatherND", "Tile", "Expand",
    "Cast", "ScatterND", "ScatterElements", "Slice", "Split", "Transpose", "NonZero", "Dropout",
    "Tile", "OneHot",
})

# Ops that allocate nothing new or only create constants: no layer row at all.
VIEWS_AND_FACTORIES = frozenset({
    "view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "expand_as", "squeeze", "unsqueeze",
    "flatten", "unflatten", "slice", "select", "split", "split_with_sizes", "chunk", "unbind", "narrow", "alias",
    "as_strided", "detach", "view_as", "movedim", "swapaxes", "diagonal", "unfold", "split_tensor",
    "zeros", "ones", "empty", "full", "arange", "randn", "rand", "randint", "normal", "scalar_tensor", "tensor",
    "linspace", "eye", "empty_strided", "new_zeros", "new_ones", "new_empty", "new_full", "_local_scalar_dense",
    "item", "device", "dim", "is_nonzero", "_assert_async", "sym_numel", "dropout", "feature_dropout", "alpha_dropout", "size", "sym_size", "stride", "is_same_size",
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Constant", "ConstantOfShape", "Range", "Size",
})


def elementwise_cost(op: str, out_shape: Shape, in_shape: Shape | None, rules: MacRules) -> OpCost | None:
    """Cost of an element-wise, reduction, pooling or resampling op; None when ``op`` is none of those."""
    n_out = numel(out_shape)
    if op in ELEMENTWISE:
        cat, per = ELEMENTWISE[op]
        ops = round(per * n_out)
        fold = {"activation": rules.activation, "elementwise": rules.elementwise, "norm": rules.norm}.get(cat, 0.0)
        return OpCost(round(fold * n_out), ops)
    if op in REDUCTIONS:
        return OpCost(0, numel(in_shape) if in_shape is not None else n_out)
    if op in GLOBAL_POOLS:
        n_in = numel(in_shape) if in_shape is not None else n_out
        return OpCost(round(rules.pooling * n_out), n_in)
    if op in RESAMPLE:
        return OpCost(0, RESAMPLE[op] * n_out)
    if op in DATA_MOVEMENT:
        return OpCost()
    return None


def window_pool_cost(out_shape: Shape, kernel: Sequence[int], rules: MacRules) -> OpCost:
    """Window pooling: each output element reduces a kernel-sized window."""
    n = numel(out_shape) * numel(kernel)
    return OpCost(round(rules.pooling * numel(out_shape)), n)
