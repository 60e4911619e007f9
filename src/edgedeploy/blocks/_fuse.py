"""Fusion algebra shared by the reparameterizable blocks: BN into conv, kernel padding, identity as a kernel."""
from __future__ import annotations

import torch
from torch import nn


def fuse_conv_bn(weight: torch.Tensor, bias: torch.Tensor | None,
                 bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (weight, bias) of one conv equal to ``bn(conv(x))`` in eval mode."""
    std = (bn.running_var + bn.eps).sqrt()
    gamma = bn.weight if bn.weight is not None else torch.ones_like(std)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(std)
    scale = gamma / std
    b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    return weight * scale.reshape(-1, 1, 1, 1), beta + (b - bn.running_mean) * scale


def pad_kernel(weight: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Zero-pad a k x k kernel to kernel_size x kernel_size (centred)."""
    p = (kernel_size - weight.shape[-1]) // 2
    return nn.functional.pad(weight, [p, p, p, p]) if p else weight


def identity_kernel(channels: int, groups: int, kernel_size: int, like: torch.Tensor) -> torch.Tensor:
    """Kernel of a grouped conv that returns its input unchanged."""
    per_group = channels // groups
    w = torch.zeros(channels, per_group, kernel_size, kernel_size, dtype=like.dtype, device=like.device)
    c = kernel_size // 2
    w[torch.arange(channels), torch.arange(channels) % per_group, c, c] = 1.0
    return w


def branch_kernel(branch: nn.Module, channels: int, groups: int, kernel_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of a branch: ``ConvBN`` (Sequential conv, bn) or a bare BatchNorm2d (identity branch)."""
    if isinstance(branch, nn.BatchNorm2d):
        w = identity_kernel(channels, groups, kernel_size, branch.running_mean)
        return fuse_conv_bn(w, None, branch)
    conv, bn = branch.conv, branch.bn
    w, b = fuse_conv_bn(conv.weight, conv.bias, bn)
    return pad_kernel(w, kernel_size), b


def conv_bn(in_ch: int, out_ch: int, kernel_size: int, stride: int, groups: int) -> nn.Sequential:
    """Conv2d (bias-free, 'same' padding) followed by BatchNorm2d, as a named Sequential (conv, bn)."""
    seq = nn.Sequential()
    seq.add_module("conv", nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, groups=groups, bias=False))
    seq.add_module("bn", nn.BatchNorm2d(out_ch))
    return seq


def fused_conv(template: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    """A Conv2d with template's geometry carrying the fused weight and bias."""
    conv = nn.Conv2d(template.in_channels, template.out_channels, weight.shape[-1], template.stride,
                     weight.shape[-1] // 2, dilation=template.dilation, groups=template.groups, bias=True,
                     device=weight.device, dtype=weight.dtype)
    conv.weight.data.copy_(weight.detach())
    conv.bias.data.copy_(bias.detach())
    return conv
