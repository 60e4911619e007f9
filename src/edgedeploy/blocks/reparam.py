"""``reparameterize(model)``: fold train-time branches and BatchNorm into single convs, verified and measured."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ParityError
from ._cost import as_shape, cost, run_checked
from ._fuse import fuse_conv_bn, fused_conv
from .conv_bn_act import ConvBNAct


@dataclass(frozen=True)
class ReparamConfig:
    """Options of ``reparameterize``."""

    # max error allowed between the model before and after, in float64, relative to max(1, max |output|)
    tolerance: float = 1e-5
    fuse_conv_bn: bool = True      # also fold Conv2d -> BatchNorm2d pairs (ConvBNAct, Sequential) outside rep blocks
    rules: str = "thop"            # MAC counting convention for the report ('thop' counts BN, so fusing shows)
    warmup: int = 3
    repeats: int = 10              # latency repeats (torch CPU) before and after
    seed: int = 0


@dataclass(frozen=True)
class ReparamReport:
    """What reparameterization changed, with the parity check that proves it changed nothing else."""

    blocks_reparameterized: int
    conv_bn_fused: int
    max_abs_error: float           # float64 comparison, asserted <= tolerance
    max_abs_error_fp32: float      # float32 comparison, for information
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    latency_before_ms: float
    latency_after_ms: float
    input_shape: tuple[int, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def __str__(self) -> str:
        return (f"reparameterized {self.blocks_reparameterized} blocks, fused {self.conv_bn_fused} conv+BN; "
                f"max |diff| {self.max_abs_error:.2e} (fp64) / {self.max_abs_error_fp32:.2e} (fp32); "
                f"MACs {self.macs_before:,} -> {self.macs_after:,}; params {self.params_before:,} -> "
                f"{self.params_after:,}; latency {self.latency_before_ms:.3f} -> {self.latency_after_ms:.3f} ms")


@dataclass
class ReparamResult:
    """The inference-time model and its report."""

    model: nn.Module
    report: ReparamReport


def _fuse_pairs(model: nn.Module) -> int:
    """Fold BatchNorm2d into the preceding Conv2d in ConvBNAct blocks and Sequential containers (in place)."""
    fused = 0
    for module in model.modules():
        if isinstance(module, ConvBNAct) and isinstance(module.bn, nn.BatchNorm2d):
            module.conv = fused_conv(module.conv, *fuse_conv_bn(module.conv.weight, module.conv.bias, module.bn))
            module.bn = nn.Identity()
            fused += 1
        elif isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                conv, bn = module._modules[a], module._modules[b]
                if (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
                        and bn.num_features == conv.out_channels):
                    module._modules[a] = fused_conv(conv, *fuse_conv_bn(conv.weight, conv.bias, bn))
                    module._modules[b] = nn.Identity()
                    fused += 1
    return fused


def _max_err(a: nn.Module, b: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(max abs difference, max |output| of ``a``) on ``x``."""
    ya, yb = run_checked(a, x, "reparameterize"), run_checked(b, x, "reparameterize")
    return float((ya - yb).abs().max()), float(ya.abs().max())


def _latency_ms(model: nn.Module, x: torch.Tensor, cfg: ReparamConfig) -> float:
    from ..metrics.latency import measure

    with torch.no_grad():
        return measure(model, (x,), warmup=cfg.warmup, repeats=cfg.repeats).median_ms


def reparameterize(model: nn.Module, input_shape: tuple[int, ...] | str,
                   config: ReparamConfig | None = None) -> ReparamResult:
    """Return an eval-mode copy with every rep block (and conv+BN pair) fused; raise ParityError if outputs differ."""
    cfg = config or ReparamConfig()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"reparameterize() takes a torch.nn.Module, not {type(model).__name__}")
    shape = as_shape(input_shape, "reparameterize")
    before = copy.deepcopy(model).eval()
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    after64 = copy.deepcopy(model).eval().double()      # fuse in float64: the fold itself adds no rounding
    blocks = 0
    with torch.no_grad():
        for module in list(after64.modules()):
            if callable(getattr(module, "reparameterize", None)):
                module.reparameterize()
                blocks += 1
        fused = _fuse_pairs(after64) if cfg.fuse_conv_bn else 0
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(shape, generator=gen)
    err64, scale = _max_err(copy.deepcopy(before).double(), after64, x.double())
    if not err64 <= cfg.tolerance * max(1.0, scale):
        raise ParityError(f"reparameterize: outputs differ by {err64:.3e} (> tolerance {cfg.tolerance:g} x "
                          f"max(1, max|y| {scale:.3g})) at input {'x'.join(map(str, shape))}; a block's "
                          "reparameterize() is wrong: report it with the model")
    after = after64.to(dtype)
    cb, ca = cost(before, shape, cfg.rules), cost(after, shape, cfg.rules)
    report = ReparamReport(
        blocks_reparameterized=blocks, conv_bn_fused=fused, max_abs_error=err64,
        max_abs_error_fp32=_max_err(before, after, x)[0], macs_before=cb.macs, macs_after=ca.macs,
        params_before=cb.params, params_after=ca.params, latency_before_ms=_latency_ms(before, x, cfg),
        latency_after_ms=_latency_ms(after, x, cfg), input_shape=shape)
    return ReparamResult(after, report)


_DEPLOY_METHODS = ("reparameterize", "switch_to_deploy")


def deploy_form(model: nn.Module) -> tuple[nn.Module, int]:
    """An eval copy with every re-parameterizable block (ours, timm's MobileOne/RepVGG/FastViT) in deploy form.

    Returns (model, blocks fused); the model itself when it has none. ``reparameterize`` also checks parity."""
    if not any(callable(getattr(m, n, None)) for m in model.modules() for n in _DEPLOY_METHODS):
        return model, 0
    deploy = copy.deepcopy(model).eval()
    fused = 0
    with torch.no_grad():
        for module in list(deploy.modules()):
            method = next((getattr(module, n) for n in _DEPLOY_METHODS if callable(getattr(module, n, None))), None)
            if method is not None:
                method()
                fused += 1
    return deploy, fused
