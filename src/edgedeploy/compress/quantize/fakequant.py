"""Fake-quantized torch modules (torch.ao FakeQuantize): PTQ calibration, QAT fine-tuning, QDQ ONNX export."""
from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.ao.quantization import FakeQuantize
from torch.ao.quantization.observer import (HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver,
                                            MovingAveragePerChannelMinMaxObserver, PerChannelMinMaxObserver)
from torch.nn import functional as F


def _act_fq(config: Any, qat: bool) -> FakeQuantize:
    symmetric = bool(config.symmetric)
    lo, hi, dtype = (-128, 127, torch.qint8) if symmetric else (0, 255, torch.quint8)
    scheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
    observer = MovingAverageMinMaxObserver if qat else (
        HistogramObserver if config.calibration in ("entropy", "percentile") else MinMaxObserver)
    return FakeQuantize(observer=observer, quant_min=lo, quant_max=hi, dtype=dtype, qscheme=scheme)


def _weight_fq(config: Any, qat: bool) -> FakeQuantize:
    q = 2 ** (config.weight_bits - 1) - 1           # symmetric grid [-q, q] inside an int8 container
    if config.per_channel is not False:
        obs = MovingAveragePerChannelMinMaxObserver if qat else PerChannelMinMaxObserver
        return FakeQuantize(observer=obs, quant_min=-q, quant_max=q, dtype=torch.qint8,
                            qscheme=torch.per_channel_symmetric, ch_axis=0)
    obs = MovingAverageMinMaxObserver if qat else MinMaxObserver
    return FakeQuantize(observer=obs, quant_min=-q, quant_max=q, dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)


class QuantLayer(nn.Module):
    """A Conv2d/Linear whose input activations and weights pass through fake quantization."""

    def __init__(self, layer: nn.Module, config: Any, qat: bool) -> None:
        super().__init__()
        self.layer = layer
        self.act_fq = _act_fq(config, qat)
        self.weight_fq = _weight_fq(config, qat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act_fq(x)
        w = self.weight_fq(self.layer.weight)
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, w, self.layer.bias)
        return self.layer._conv_forward(x, w, self.layer.bias)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Copy of ``model`` (eval) with every Conv->BatchNorm pair folded (torch.fx); unchanged if untraceable."""
    from torch.fx.experimental.optimization import fuse

    model = copy.deepcopy(model).eval()
    try:
        return fuse(model)
    except Exception:  # noqa: BLE001 - models fx cannot trace keep their BN layers (still quantizable)
        return model


def quantizable_modules(model: nn.Module) -> list[str]:
    """Dotted paths of the Conv2d/Linear modules that fake quantization wraps."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and n]


def wrap(model: nn.Module, config: Any, ignored: Iterable[str], qat: bool) -> nn.Module:
    """Replace every Conv2d/Linear not in ``ignored`` by a QuantLayer (in place)."""
    skip = set(ignored)
    for name in quantizable_modules(model):
        if name in skip:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, QuantLayer(getattr(parent, child), config, qat))
    return model


@torch.no_grad()
def calibrate(model: nn.Module, batches: list[tuple[torch.Tensor, ...]]) -> None:
    """Run calibration batches with observers on, then freeze the ranges."""
    model.eval()
    model.apply(torch.ao.quantization.enable_observer)
    model.apply(torch.ao.quantization.disable_fake_quant)
    for args in batches:
        model(*args)
    model.apply(torch.ao.quantization.enable_fake_quant)
    model.apply(torch.ao.quantization.disable_observer)


def finetune(model: nn.Module, train: list[tuple[torch.Tensor, torch.Tensor]], epochs: int, lr: float,
             seed: int = 0, loss_fn: Any = F.cross_entropy) -> list[float]:
    """Quantization-aware fine-tuning (observers track ranges for the first epoch, then freeze)."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        model.train()
        model.apply(torch.ao.quantization.enable_observer if epoch == 0 else torch.ao.quantization.disable_observer)
        total, n = 0.0, 0
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        for i in order:
            xb, yb = train[i]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(xb), n + len(xb)
        history.append(total / max(n, 1))
    model.apply(torch.ao.quantization.disable_observer)
    return history


def int8_exportable(model: nn.Module) -> nn.Module:
    """Copy whose weights sit on their (possibly < 8-bit) grid, with 8-bit fake-quant at the same scales.

    ONNX QuantizeLinear holds int8; a 4-bit grid [-7, 7] fits inside it, so the exported model is a plain
    INT8 QDQ model computing exactly what the fake-quantized module computes.
    """
    model = copy.deepcopy(model).eval()
    for m in model.modules():
        if isinstance(m, QuantLayer):
            with torch.no_grad():
                m.layer.weight.copy_(m.weight_fq(m.layer.weight))
            m.weight_fq.quant_min, m.weight_fq.quant_max = -128, 127
            m.weight_fq.activation_post_process.quant_min = -128
            m.weight_fq.activation_post_process.quant_max = 127
    model.apply(torch.ao.quantization.disable_observer)
    return model
