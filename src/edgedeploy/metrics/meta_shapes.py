"""Output shapes of the commonest ops on meta tensors, without their meta kernels.

Many of torch's meta kernels are Python references wrapped in ``dynamo.disable``: the first one called imports
``torch._dynamo`` (1-2 s), more than the whole profile of a ResNet-50. Normalizations, element-wise maths,
in-place ops and concatenation cover almost every call in a vision model; anything else (or anything unusual:
``out=`` arguments, mixed devices) returns None and goes to the real meta kernel.
"""
from __future__ import annotations

from typing import Any

import torch

# output shaped (and typed) like the first argument
_LIKE_FIRST = frozenset({
    "batch_norm", "layer_norm", "group_norm", "instance_norm", "relu", "relu6", "gelu", "sigmoid", "tanh", "silu",
    "hardtanh", "hardswish", "hardsigmoid", "leaky_relu", "elu", "selu", "celu", "mish", "softplus", "neg", "exp",
    "sqrt", "rsqrt", "abs", "erf", "log", "clamp", "clamp_min", "clamp_max", "softmax", "_softmax", "log_softmax",
    "_log_softmax", "clone", "contiguous", "prelu", "_prelu_kernel", "reciprocal", "sin", "cos", "square",
})
# element-wise with broadcasting and type promotion
_BINARY = frozenset({"add", "sub", "mul", "div", "maximum", "minimum", "pow", "rsub", "true_divide"})


def fast_meta(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any | None:
    """Meta output of op ``name`` (aten overload packet name) or None to use the op's own meta kernel."""
    if "out" in kwargs or not args:
        return None
    if name == "cat":
        return _cat(args, kwargs)
    if not isinstance(args[0], torch.Tensor) or args[0].device.type != "meta":
        return None
    first = args[0]
    if name.endswith("_") and not name.startswith("_") and name[:-1] in _LIKE_FIRST | _BINARY:
        return first                                  # in-place: the result is the (already shaped) input
    if any(isinstance(a, torch.dtype) for a in (*args, *kwargs.values())):
        return None                                   # a dtype argument changes the output type
    if name in _LIKE_FIRST:
        return _like(first)
    if name in _BINARY:
        out = _binary(args)
        if out is not None and name in ("div", "true_divide") and not out.dtype.is_floating_point \
                and kwargs.get("rounding_mode") is None and not out.dtype.is_complex:
            return torch.empty(out.shape, dtype=torch.get_default_dtype(), device="meta")
        return out
    if name == "convolution" and len(args) == 9:
        return _convolution(*args)
    if name in ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
        return _conv_nd(name, first, args, kwargs)
    if name == "linear" and len(args) > 1 and isinstance(args[1], torch.Tensor) and args[1].dim() == 2 \
            and first.dim() >= 1 and first.shape[-1] == args[1].shape[1]:
        return torch.empty((*first.shape[:-1], args[1].shape[0]), dtype=first.dtype, device="meta")
    if name == "scaled_dot_product_attention" and len(args) > 2 and all(isinstance(a, torch.Tensor) for a in args[1:3]) \
            and first.dim() == args[1].dim() == args[2].dim() >= 2 and first.shape[-1] == args[1].shape[-1] \
            and args[1].shape[-2] == args[2].shape[-2] and first.shape[:-2] == args[1].shape[:-2] == args[2].shape[:-2]:
        return torch.empty((*first.shape[:-1], args[2].shape[-1]), dtype=first.dtype, device="meta")
    if name in ("adaptive_avg_pool2d", "_adaptive_avg_pool2d") and first.dim() in (3, 4):
        size = args[1] if len(args) > 1 else kwargs.get("output_size")
        size = (size, size) if isinstance(size, int) else tuple(size)
        return torch.empty((*first.shape[:-2], *size), dtype=first.dtype, device="meta")
    if name in ("max_pool2d", "avg_pool2d") and first.dim() in (3, 4):
        return _pool2d(name, first, args, kwargs)
    return None


def _convolution(x: torch.Tensor, w: Any, _bias: Any, stride: Any, padding: Any, dilation: Any, transposed: Any,
                 output_padding: Any, groups: Any) -> Any | None:
    """aten.convolution's output: (N, C_out, *spatial) by the usual formulas (stride, padding, dilation)."""
    n = x.dim() - 2
    if not isinstance(w, torch.Tensor) or w.dim() != x.dim() or n < 1 or not isinstance(groups, int) \
            or any(not isinstance(v, (list, tuple)) or len(v) != n for v in (stride, padding, dilation)):
        return None
    out_pad = output_padding if transposed else [0] * n
    if not isinstance(out_pad, (list, tuple)) or len(out_pad) != n:
        return None
    if groups < 1 or (x.shape[1] != w.shape[0] if transposed else x.shape[1] != w.shape[1] * groups) \
            or w.shape[0] % groups:
        return None                                   # mismatched channels: the real kernel raises its error
    c_out = w.shape[1] * groups if transposed else w.shape[0]
    sizes = []
    for size, k, s, p, d, op in zip(x.shape[2:], w.shape[2:], stride, padding, dilation, out_pad):
        o = ((size - 1) * s - 2 * p + d * (k - 1) + op + 1) if transposed else ((size + 2 * p - d * (k - 1) - 1) // s + 1)
        if o <= 0:
            return None                               # let the real kernel raise its error
        sizes.append(int(o))
    return torch.empty((x.shape[0], int(c_out), *sizes), dtype=x.dtype, device="meta")


def _conv_nd(name: str, x: torch.Tensor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any | None:
    """aten.convNd(x, w, bias, stride, padding, dilation, groups) and conv_transposeNd(x, w, bias, stride,
    padding, output_padding, groups, dilation) through ``_convolution``; unbatched or string padding -> None."""
    transposed = name.startswith("conv_transpose")
    names = ("weight", "bias", "stride", "padding") + (("output_padding", "groups", "dilation") if transposed
                                                       else ("dilation", "groups"))
    vals = dict(zip(names, args[1:]))
    vals.update({k: v for k, v in kwargs.items() if k in names})
    n = int(name[-2])
    if x.dim() != n + 2 or not isinstance(vals.get("weight"), torch.Tensor) or isinstance(vals.get("padding"), str):
        return None

    def nd(v: Any, default: int) -> list[int]:
        v = default if v is None else v
        return [v] * n if isinstance(v, int) else (list(v) * n if len(v) == 1 else list(v))

    return _convolution(x, vals["weight"], vals.get("bias"), nd(vals.get("stride"), 1), nd(vals.get("padding"), 0),
                        nd(vals.get("dilation"), 1), transposed, nd(vals.get("output_padding"), 0),
                        vals.get("groups", 1))


def _pool2d(name: str, x: torch.Tensor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any | None:
    """max_pool2d(x, kernel, stride, padding, dilation, ceil_mode) / avg_pool2d(x, kernel, stride, padding,
    ceil_mode, ...): torch's pooling_output_shape."""
    names = ("kernel_size", "stride", "padding") + (("dilation", "ceil_mode") if name == "max_pool2d"
                                                   else ("ceil_mode",))
    vals = dict(zip(names, args[1:]))
    vals.update({k: v for k, v in kwargs.items() if k in names})
    if "kernel_size" not in vals:
        return None

    def pair(v: Any, default: Any) -> tuple[int, int] | None:
        v = default if v is None or v == [] or v == () else v
        v = (v, v) if isinstance(v, int) else tuple(v)
        return (v[0], v[0]) if len(v) == 1 else (v if len(v) == 2 else None)

    k = pair(vals["kernel_size"], None)
    st = pair(vals.get("stride"), vals["kernel_size"])
    pad, dil = pair(vals.get("padding", 0), 0), pair(vals.get("dilation", 1), 1)
    if None in (k, st, pad, dil):
        return None
    ceil = bool(vals.get("ceil_mode", False))
    out = []
    for size, kk, s, p, d in zip(x.shape[-2:], k, st, pad, dil):
        num = int(size) + 2 * p - d * (kk - 1) - 1 + (s - 1 if ceil else 0)
        o = num // s + 1
        if ceil and (o - 1) * s >= int(size) + p:
            o -= 1
        if o <= 0:
            return None                               # let the real kernel raise its error
        out.append(o)
    return torch.empty((*x.shape[:-2], *out), dtype=x.dtype, device="meta")


def _like(t: torch.Tensor) -> torch.Tensor:
    """A dense tensor like ``t`` (torch.empty_like on meta is a Python reference: it would import sympy)."""
    fmt = torch.channels_last if t.dim() == 4 and not t.is_contiguous() and \
        t.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return torch.empty(t.shape, dtype=t.dtype, device="meta", memory_format=fmt)


def _binary(args: tuple[Any, ...]) -> Any | None:
    a, b = args[0], args[1] if len(args) > 1 else None
    if b is None:
        return None
    if isinstance(b, torch.Tensor):
        if b.device.type != "meta" and b.dim() > 0:
            return None
        shape = _broadcast(tuple(a.shape), tuple(b.shape))
        if shape is None:
            return None
    elif isinstance(b, (int, float, bool)):
        shape = a.shape
    else:
        return None
    return torch.empty(shape, dtype=torch.result_type(a, b), device="meta")


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """NumPy broadcasting of two shapes (torch.broadcast_shapes imports sympy); None when they do not broadcast."""
    out = []
    for x, y in zip((1,) * (len(b) - len(a)) + a, (1,) * (len(a) - len(b)) + b):
        if x != y and 1 not in (x, y):
            return None
        out.append(y if x == 1 else x)
    return tuple(out)


def _cat(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any | None:
    tensors = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not isinstance(tensors, (list, tuple)) or not isinstance(dim, int):
        return None
    live = [t for t in tensors if isinstance(t, torch.Tensor) and not (t.dim() == 1 and t.numel() == 0)]
    if not live or any(t.device.type != "meta" or t.dim() != live[0].dim() for t in live):
        return None
    dim = dim % live[0].dim()
    shape = list(live[0].shape)
    if any(list(t.shape[:dim]) + list(t.shape[dim + 1:]) != shape[:dim] + shape[dim + 1:] for t in live):
        return None                                   # let the real kernel raise its own error
    shape[dim] = sum(int(t.shape[dim]) for t in live)
    dtype = live[0].dtype
    for t in live[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return torch.empty(shape, dtype=dtype, device="meta")
