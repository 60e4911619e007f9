"""FP16-aware training: round weights and activations through float16 in the forward pass (straight-through).

The tutorial's advice ("train with FP16 precision to reduce errors after deployment"): fine-tune the BN-folded
model with every weight and activation rounded to float16, then bake the rounded weights in. On an FP16 device
(MyriadX) the rounded forward is what runs; ONNX Runtime's CPU provider computes a float16 graph in fp32
between float16 weights, so there the remaining deployment error of a plain model is its weight rounding,
which FP16-aware training removes (weights already on the float16 grid).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils import parametrize


def _round16(x: torch.Tensor) -> torch.Tensor:
    """Value of ``x`` rounded to float16, gradient passed straight through."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        return x
    return x + (x.to(torch.float16).to(x.dtype) - x).detach()


def _rewrite_graph(gm: torch.fx.GraphModule, enable: bool) -> None:
    """Insert (or remove) a float16 rounding after every value of a traced model's graph."""
    g = gm.graph
    for node in list(g.nodes):
        if enable and node.op in ("placeholder", "call_module", "call_function", "call_method") \
                and node.target is not _round16:
            with g.inserting_after(node):
                r = g.call_function(_round16, (node,))
            node.replace_all_uses_with(r, delete_user_cb=lambda user, r=r: user is not r)
        elif not enable and node.op == "call_function" and node.target is _round16:
            node.replace_all_uses_with(node.args[0])
            g.erase_node(node)
    g.lint()
    gm.recompile()


class _Fp16Weight(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return _round16(w)


def enable_fp16_rounding(model: nn.Module) -> nn.Module:
    """Make ``model`` compute like an FP16 deployment: weights and every leaf layer's inputs/outputs in float16."""
    for m in list(model.modules()):
        if hasattr(m, "_ed_fp16_hooks") or isinstance(m, (_Fp16Weight, parametrize.ParametrizationList)):
            continue
        for pname, p in list(m.named_parameters(recurse=False)):
            if p.dim() > 0:
                parametrize.register_parametrization(m, pname, _Fp16Weight())
        hooks = []
        if isinstance(model, torch.fx.GraphModule):
            pass                          # activations are rounded in the graph itself (below)
        elif not [c for c in m.children() if not isinstance(c, parametrize.ParametrizationList)]:
            hooks.append(m.register_forward_hook(lambda _m, _i, out: _round16(out)))
            hooks.append(m.register_forward_pre_hook(lambda _m, args: tuple(_round16(a) for a in args)))
        m._ed_fp16_hooks = hooks
    if isinstance(model, torch.fx.GraphModule):
        _rewrite_graph(model, enable=True)
    return model


def prepare_fp16_training(model: nn.Module) -> nn.Module:
    """Copy of ``model`` with BatchNorm folded into its convs (as export does) and float16 rounding enabled.

    Fine-tune the result (any training loop): what it computes is what the FP16 deployment computes.
    """
    from .fakequant import fold_batchnorm

    return enable_fp16_rounding(fold_batchnorm(model))


def disable_fp16_rounding(model: nn.Module) -> nn.Module:
    """Bake the float16-rounded weights in and remove the rounding hooks (the model to export)."""
    if isinstance(model, torch.fx.GraphModule):
        _rewrite_graph(model, enable=False)
    for m in list(model.modules()):
        for h in getattr(m, "_ed_fp16_hooks", []):
            h.remove()
        if hasattr(m, "_ed_fp16_hooks"):
            del m._ed_fp16_hooks
        if parametrize.is_parametrized(m):
            # undo by hand: torch's remove_parametrizations deletes the property from a class that deep
            # copies of this model share, which would break the copies
            values = {name: getattr(m, name).detach().clone() for name in m.parametrizations}
            m.__class__ = m.__class__.__bases__[0]
            del m._modules["parametrizations"]
            for name, value in values.items():
                m.register_parameter(name, nn.Parameter(value))
    return model


def fp16_export_error(model: nn.Module, x: torch.Tensor, out: str | None = None) -> dict[str, float]:
    """Max and mean |FP16 ONNX deployment - ``model`` as validated (with its rounding, if any)| on ``x``."""
    import copy

    from .api import quantize
    from .config import QuantConfig
    from ...runtime import load

    with torch.no_grad():
        ref = model.eval()(x).numpy()
    deploy = disable_fp16_rounding(copy.deepcopy(model))
    res = quantize(deploy, QuantConfig(mode="fp16", backend="onnxruntime"), example_inputs=x[:1], out=out,
                   per_layer=False, latency=False)
    got = load(res.path, runtime="onnxruntime").run(x.numpy())[0]
    err = abs(got.astype("float64") - ref)
    return {"max_abs": float(err.max()), "mean_abs": float(err.mean())}


@contextmanager
def fp16_rounding(model: nn.Module) -> Iterator[nn.Module]:
    """Context: train/evaluate ``model`` with float16 rounding, baked into the weights on exit."""
    enable_fp16_rounding(model)
    try:
        yield model
    finally:
        disable_fp16_rounding(model)
