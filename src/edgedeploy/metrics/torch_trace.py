"""Trace a torch model with a TorchDispatchMode: every aten op (functional or module), owned by its layer.

Module ownership comes from global forward (pre-)hooks: an op belongs to the innermost *leaf* module
being executed (one row per call, so a ReLU used twice is two rows); an op called directly in a
non-leaf module's forward (torch.cat, F.interpolate, ``+``, grid_sample ...) becomes a row of its own.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_unflatten

from .aggregate import ACT, BUFFER, CONST, INPUT, PARAM, OpEvent, TensorRef, Trace
from .counting import (VIEWS_AND_FACTORIES, MacRules, OpCost, attention_cost, conv_cost, elementwise_cost,
                       matmul_cost, window_pool_cost)
from .meta_shapes import fast_meta

_CONV = {"conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose1d", "conv_transpose2d",
         "conv_transpose3d", "mkldnn_convolution", "_slow_conv2d_forward", "thnn_conv2d"}
_MATMUL = {"mm", "bmm", "matmul", "addmm", "baddbmm", "addbmm", "linear", "dot", "mv", "addmv", "_addmm_activation"}
_SDPA = {"scaled_dot_product_attention", "_scaled_dot_product_flash_attention_for_cpu",
         "_scaled_dot_product_efficient_attention", "_scaled_dot_product_flash_attention",
         "_scaled_dot_product_attention_math", "_scaled_dot_product_fused_attention_overrideable"}


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape)


def op_cost(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any, rules: MacRules) -> OpCost | None:
    """Cost of one aten op from its arguments and result; None when no rule covers it."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    outs = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)]
    out_shape = _shape(outs[0]) if outs else ()
    in_shape = _shape(tensors[0]) if tensors else None
    if name in _CONV:
        x, w = args[0], args[1]
        bias = args[2] if len(args) > 2 else kwargs.get("bias")
        transposed = name.startswith("conv_transpose") or (name in {"convolution", "_convolution"} and bool(args[6]))
        return conv_cost(out_shape, _shape(w), _shape(x), transposed, isinstance(bias, torch.Tensor), rules)
    if name in _MATMUL:
        a = args[1] if name in {"addmm", "baddbmm", "addbmm", "addmv", "_addmm_activation"} else args[0]
        k = int(a.shape[-1])
        has_bias = name in {"linear"} and len(args) > 2 and isinstance(args[2], torch.Tensor)
        if name == "addbmm":  # sums over the batch: b x n x k x m MACs
            return OpCost(int(a.shape[0]) * int(a.shape[1]) * k * int(args[2].shape[-1]), 0)
        return matmul_cost(out_shape, k, has_bias or name in {"addmm", "baddbmm", "addmv"})
    if name in _SDPA:
        return attention_cost(_shape(args[0]), _shape(args[1]), _shape(args[2]))
    if name == "_native_multi_head_attention":
        q, k = args[0], args[1]
        B, L, E = _shape(q)
        S = int(k.shape[1])
        proj = B * L * E * E + 2 * B * S * E * E + B * L * E * E
        att = attention_cost((B, L, E), (B, S, E), (B, S, E))
        return OpCost(proj + att.macs, att.elem_ops)
    if name in {"max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "max_pool3d_with_indices",
                "avg_pool1d", "avg_pool2d", "avg_pool3d"}:
        k = args[1] if len(args) > 1 else kwargs.get("kernel_size")
        dims = len(out_shape) - 2
        kernel = [int(k)] * dims if isinstance(k, int) else [int(v) for v in k]
        if len(kernel) == 1 and dims > 1:
            kernel = kernel * dims
        return window_pool_cost(out_shape, kernel, rules)
    return elementwise_cost(name.rstrip("_") if name.endswith("_") and not name.startswith("_") else name,
                            out_shape, in_shape, rules)


@dataclass
class _State:
    names: dict[int, str]
    leaves: set[int]
    kinds: dict[int, str]
    stack: list[tuple[str, bool, str]] = field(default_factory=list)   # (row key or module name, is_leaf, type)
    calls: dict[str, int] = field(default_factory=dict)
    leaf_shapes: dict[str, tuple[list[tuple[int, ...]], list[tuple[int, ...]]]] = field(default_factory=dict)
    keep_alive: list[Any] = field(default_factory=list)
    alias: dict[int, int] = field(default_factory=dict)
    events: list[OpEvent] = field(default_factory=list)
    unsupported: dict[str, int] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=itertools.count)
    meta: bool = False

    def ref(self, t: torch.Tensor, produced: bool = False) -> TensorRef:
        st = t.untyped_storage()
        key = self.alias.get(st._cdata, st._cdata)   # the StorageImpl address, through recorded views
        self.keep_alive.append(st)          # keep storages alive so their addresses are never reused
        kind = ACT if produced else self.kinds.get(key, CONST)
        if produced:
            self.kinds.setdefault(key, ACT)
        return TensorRef(key, _shape(t), t.element_size(), t.is_floating_point() or t.is_complex(), kind,
                         st.nbytes() // max(t.element_size(), 1))

    def alias_of(self, view: torch.Tensor, base: torch.Tensor) -> None:
        """Record that ``view`` shares ``base``'s storage."""
        b = base.untyped_storage()
        v = view.untyped_storage()
        if v._cdata != b._cdata:
            self.keep_alive.extend((b, v))
            self.alias[v._cdata] = self.alias.get(b._cdata, b._cdata)

    def unique_row(self, base: str) -> str:
        n = self.calls.get(base, 0) + 1
        self.calls[base] = n
        return base if n == 1 else f"{base}#{n}"


class _Tracer(TorchDispatchMode):
    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a mode's __torch_dispatch__ in dynamo.disable, which imports torch._dynamo (~1.5 s) on the
        # first op; the profiler never runs under torch.compile, so there is nothing to disable
        return False

    def __init__(self, state: _State, rules: MacRules) -> None:
        super().__init__()
        self.s, self.rules = state, rules
        self.memo: dict[Any, Any] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        out = self._meta_call(func, args, kwargs) if self.s.meta and name not in VIEWS_AND_FACTORIES \
            else func(*args, **kwargs)
        s = self.s
        if name in VIEWS_AND_FACTORIES:
            base = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if base is not None:   # a view: its storage is its base's (fake tensors do not share it)
                for o in tree_flatten(out)[0]:
                    if isinstance(o, torch.Tensor):
                        s.alias_of(o, base)
            return out
        ins = [s.ref(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        outs = [s.ref(t, produced=True) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        cost = op_cost(name, args, kwargs, out, self.rules)
        if cost is None:
            s.unsupported[name] = s.unsupported.get(name, 0) + 1
        if s.stack and s.stack[-1][1]:
            row, row_op = s.stack[-1][0], s.stack[-1][2]
        else:
            parent = s.stack[-1][0] if s.stack else ""
            row, row_op = s.unique_row(f"{parent}/{name}" if parent else name), name
        s.events.append(OpEvent(name, row, row_op, ins, outs, cost or OpCost(), cost is not None))
        return out

    def _meta_call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """On meta tensors only shapes matter: an op seen before with the same input shapes gets fresh empty
        outputs of the recorded shapes (meta batch_norm, layer_norm ... run slow Python decompositions)."""
        fast = fast_meta(func.overloadpacket.__name__, args, kwargs)
        if fast is not None:
            return fast
        if func._schema.is_mutable:
            return func(*args, **kwargs)
        flat, spec = tree_flatten((args, kwargs))
        key = (func, spec, tuple((tuple(a.shape), a.dtype) if isinstance(a, torch.Tensor) else a for a in flat))
        try:
            cached = self.memo.get(key)
        except TypeError:                       # an unhashable argument: no memo for this call
            return func(*args, **kwargs)
        if cached is None:
            out = func(*args, **kwargs)
            leaves, out_spec = tree_flatten(out)
            if all(isinstance(o, torch.Tensor) and o.device.type == "meta" for o in leaves):
                self.memo[key] = (out_spec, [(tuple(o.shape), o.dtype, o.stride()) for o in leaves])
            return out
        out_spec, metas = cached
        return tree_unflatten([torch.empty_strided(shape, stride, dtype=dtype, device="meta")
                               for shape, dtype, stride in metas], out_spec)


def _tensor_shapes(obj: Any) -> list[tuple[int, ...]]:
    return [_shape(t) for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


@contextmanager
def _module_hooks(state: _State) -> Iterator[None]:
    def pre(mod: torch.nn.Module, args: Any) -> None:
        name = state.names.get(id(mod))
        if name is None:
            return
        is_leaf = id(mod) in state.leaves
        key = state.unique_row(name or type(mod).__name__) if is_leaf else name
        if is_leaf:
            state.leaf_shapes[key] = (_tensor_shapes(args), [])
        state.stack.append((key, is_leaf, type(mod).__name__))

    def post(mod: torch.nn.Module, args: Any, output: Any) -> None:
        if state.names.get(id(mod)) is None or not state.stack:
            return
        key, is_leaf, _ = state.stack.pop()
        if is_leaf:
            state.leaf_shapes[key] = (state.leaf_shapes[key][0], _tensor_shapes(output))

    h1 = torch.nn.modules.module.register_module_forward_pre_hook(pre)
    h2 = torch.nn.modules.module.register_module_forward_hook(post)
    try:
        yield
    finally:
        h1.remove()
        h2.remove()


def _key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


def trace_module(model: torch.nn.Module, inputs: tuple[Any, ...], rules: MacRules, execute: str = "meta") -> Trace:
    """Run ``model(*inputs)`` once under the tracer and return its events.

    ``execute``: "meta" runs on meta tensors (shapes only, in C++: the cheapest, no fake-tensor machinery to
    import), "fake" on FakeTensors (handles CPU tensors a model creates inside forward), "real" computes for
    real (data-dependent models). Callers fall back from one to the next.
    """
    names = {id(m): n for n, m in model.named_modules()}
    leaves = {id(m) for m in model.modules() if next(m.children(), None) is None}
    kinds: dict[int, str] = {}
    state = _State(names=names, leaves=leaves, kinds=kinds, meta=execute == "meta")
    call: Any = model
    if execute == "meta":
        meta = {id(t): t.to("meta") for t in [*model.parameters(), *model.buffers()]}
        state.keep_alive.extend(meta.values())
        tensors_by_name = {n: meta[id(t)] for n, t in [*model.named_parameters(remove_duplicate=False),
                                                      *model.named_buffers(remove_duplicate=False)]}
        inputs = tuple(x.to("meta") if isinstance(x, torch.Tensor) else x for x in inputs)
        call = functools.partial(torch.func.functional_call, model, tensors_by_name, tie_weights=True, strict=False)
        params = {id(p) for p in model.parameters()}
        for i, t in meta.items():
            kinds[_key(t)] = PARAM if i in params else BUFFER
    else:
        for p in model.parameters():
            kinds[_key(p)] = PARAM
        for b in model.buffers():
            kinds[_key(b)] = BUFFER
    in_refs = []
    for t in tree_flatten(inputs)[0]:
        if isinstance(t, torch.Tensor):
            kinds[_key(t)] = INPUT
            in_refs.append(state.ref(t))
    fake_mode: Any = contextlib.nullcontext()
    if execute == "fake":
        from torch._subclasses.fake_tensor import FakeTensorMode

        fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
    with torch.inference_mode(), _module_hooks(state), fake_mode, _Tracer(state, rules):
        out = call(inputs) if execute == "meta" else model(*inputs)
    out_keys = {state.ref(t).key for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)}
    params = list({id(p): p for p in model.parameters()}.values())
    buffers = list({id(b): b for b in model.buffers()}.values())
    tensors = params + buffers
    return Trace(
        events=state.events, inputs=in_refs, output_keys=out_keys, shapes=state.leaf_shapes,
        unsupported=state.unsupported, params=sum(p.numel() for p in params),
        weight_numel=sum(t.numel() for t in tensors),
        weight_float_numel=sum(t.numel() for t in tensors if t.is_floating_point()),
        weight_other_bytes=sum(t.numel() * t.element_size() for t in tensors if not t.is_floating_point()),
    )
