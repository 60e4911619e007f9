"""The profiler's own meta shapes (no torch._dynamo / sympy import) agree with the ops they stand for."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from edgedeploy.metrics.meta_shapes import fast_meta

R = torch.randn


def _meta(obj):
    return obj.to("meta") if isinstance(obj, torch.Tensor) else (
        [_meta(o) for o in obj] if isinstance(obj, list) else obj)


CASES = [
    ("conv2d", (R(2, 3, 17, 23), R(8, 3, 3, 3), None, [2, 1], [1, 0], [1, 2], 1), {}),
    ("conv2d", (R(1, 8, 9, 9), R(8, 1, 5, 5), R(8), [1, 1], [2, 2], [1, 1], 8), {}),
    ("conv2d", (R(1, 4, 10, 10), R(6, 4, 1, 1)), {}),
    ("conv1d", (R(2, 4, 31), R(5, 4, 3), None, [3], [1], [2], 1), {}),
    ("conv3d", (R(1, 2, 5, 6, 7), R(3, 2, 3, 3, 3), None, [1, 2, 1], [1, 1, 0], [1, 1, 1], 1), {}),
    ("conv_transpose2d", (R(1, 8, 5, 5), R(8, 4, 2, 2), None, [2, 2], [0, 0], [1, 1], 1, [1, 1]), {}),
    ("conv_transpose2d", (R(1, 8, 5, 7), R(8, 2, 3, 3), None, [2, 2], [1, 1], [0, 1], 2, [1, 1]), {}),
    ("convolution", (R(1, 3, 12, 12), R(4, 3, 3, 3), None, [2, 2], [1, 1], [1, 1], False, [0, 0], 1), {}),
    ("max_pool2d", (R(1, 3, 15, 16), [3, 3], [2, 2], [1, 1], [1, 1], True), {}),
    ("max_pool2d", (R(1, 3, 15, 16), [2, 2]), {}),
    ("avg_pool2d", (R(2, 3, 11, 7), [3, 3], [2, 2], [0, 0], True), {}),
    ("adaptive_avg_pool2d", (R(2, 5, 9, 7), [3, 2]), {}),
    ("adaptive_avg_pool2d", (R(2, 5, 9, 7), [1, 1]), {}),
    ("linear", (R(2, 7, 16), R(5, 16), R(5)), {}),
    ("scaled_dot_product_attention", (R(2, 3, 7, 8), R(2, 3, 9, 8), R(2, 3, 9, 6)), {}),
    ("add", (R(4, 1, 5), R(3, 1)), {"alpha": 2}),
    ("mul", (R(2, 3), 2.5), {}),
    ("mul", (torch.randint(0, 5, (2, 3)), 2.5), {}),
    ("div", (torch.randint(1, 5, (2, 3)), torch.randint(1, 5, (3,))), {}),
    ("div", (torch.randint(1, 5, (2, 3)), torch.randint(1, 5, (3,))), {"rounding_mode": "floor"}),
    ("sub", (R(2, 3).half(), R(2, 3)), {}),
    ("maximum", (R(1, 3), R(4, 1)), {}),
    ("batch_norm", (R(2, 3, 4, 4), R(3), R(3), R(3), R(3).abs(), False, 0.1, 1e-5, False), {}),
    ("layer_norm", (R(2, 5, 8), [8]), {}),
    ("gelu", (R(3, 4),), {"approximate": "tanh"}),
    ("softmax", (R(3, 4), -1), {}),
    ("cat", ([R(2, 3, 4), R(2, 5, 4), R(2, 1, 4)], 1), {}),
    ("cat", ([R(2, 3), R(4, 3).double()], 0), {}),
    ("cat", ([R(0), R(2, 3)], 0), {}),
]


@pytest.mark.parametrize("name,args,kwargs", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_fast_meta_matches_the_op(name, args, kwargs):
    expected = getattr(torch.ops.aten, name)(*args, **kwargs)
    got = fast_meta(name, tuple(_meta(a) for a in args), kwargs)
    assert got is not None, f"{name} fell back to the meta kernel"
    assert got.device.type == "meta"
    assert (tuple(got.shape), got.dtype) == (tuple(expected.shape), expected.dtype)


def test_in_place_ops_return_their_input_and_odd_calls_fall_back():
    x = torch.empty(2, 3, device="meta")
    assert fast_meta("relu_", (x,), {}) is x
    assert fast_meta("add_", (x, 1.0), {}) is x
    assert fast_meta("softmax", (x, 1, torch.float64), {}) is None          # dtype change: the kernel decides
    assert fast_meta("add", (x, torch.empty(4, 3, device="meta")), {}) is None   # does not broadcast
    assert fast_meta("conv2d", (x, torch.empty(1, 1, 1, 1, device="meta")), {}) is None   # unbatched
    assert fast_meta("add", (torch.empty(2, 3), 1.0), {}) is None           # not meta
    assert fast_meta("relu", (x,), {"out": x}) is None


class _Mixed(nn.Module):
    """Every shortcut in one model: conv variants, BN, pools, attention, broadcasting, cat, in-place."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        self.dw = nn.Conv2d(16, 16, 5, 1, 2, groups=16, dilation=1)
        self.up = nn.ConvTranspose2d(16, 8, 2, 2)
        self.pool = nn.MaxPool2d(3, 2, 1, ceil_mode=True)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16 + 8, 10)

    def forward(self, x):
        y = self.stem(x)
        y = nn.functional.hardswish(self.dw(y)) + y * 0.5
        up = nn.functional.adaptive_avg_pool2d(self.up(y), 1).flatten(1)
        t = self.pool(y).flatten(2).transpose(1, 2)
        t = self.norm(t + self.attn(t, t, t, need_weights=False)[0])
        return self.head(torch.cat([t.mean(1), up], 1)).softmax(-1)


@pytest.mark.parametrize("build,shape", [
    (lambda: _Mixed(), (2, 3, 37, 41)),
    (lambda: __import__("edgedeploy.zoo.reference", fromlist=["x"]).MobileNetV2(), (1, 3, 96, 96)),
    (lambda: __import__("edgedeploy.zoo.digits", fromlist=["x"]).DigitsCNN(), (1, 1, 16, 16)),
])
def test_profiles_are_identical_with_and_without_the_shortcuts(build, shape, monkeypatch):
    from edgedeploy.metrics import torch_trace
    from edgedeploy.metrics.profile import ProfileConfig, profile

    model, x = build().eval(), torch.randn(*shape)
    fast = profile(model, x, config=ProfileConfig(execute="meta")).to_dict()
    monkeypatch.setattr(torch_trace, "fast_meta", lambda *a: None)
    slow = profile(model, x, config=ProfileConfig(execute="meta")).to_dict()
    real = profile(model, x, config=ProfileConfig(execute="real")).to_dict()
    assert fast["layers"] == slow["layers"] and fast["totals"] == slow["totals"]
    # real execution agrees on the totals (eager attention may take its fused kernel: other rows, same MACs)
    assert (fast["totals"]["macs"], fast["totals"]["params"]) == (real["totals"]["macs"], real["totals"]["params"])


def test_a_profile_does_not_import_dynamo_or_sympy():
    """The first profile of a process stays fast: neither torch._dynamo nor sympy gets imported."""
    code = ("import sys, torch\nfrom edgedeploy.metrics.profile import profile\n"
            "from edgedeploy.zoo.reference import ResNet18, MobileNetV2\n"
            "for m in (ResNet18(), MobileNetV2()):\n    profile(m.eval(), torch.randn(1, 3, 64, 64))\n"
            "print(sorted(k for k in ('torch._dynamo', 'sympy') if k in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("name,args", [
    ("conv2d", (R(1, 3, 8, 8), R(2, 1, 3, 3))),                       # 3 input channels, weight wants 1
    ("conv2d", (R(1, 4, 8, 8), R(6, 4, 3, 3), None, [1, 1], [0, 0], [1, 1], 4)),   # groups do not divide
    ("conv_transpose2d", (R(1, 3, 5, 5), R(8, 4, 2, 2))),
    ("linear", (R(2, 7), R(5, 6))),
    ("scaled_dot_product_attention", (R(1, 2, 4, 8), R(1, 2, 5, 7), R(1, 2, 5, 8))),
    ("cat", ([R(2, 3), R(2, 4)], 0)),
    ("max_pool2d", (R(1, 1, 2, 2), [5, 5])),
])
def test_mismatched_calls_fall_back_so_the_real_kernel_raises(name, args):
    with pytest.raises(RuntimeError):
        getattr(torch.ops.aten, name)(*args)
    assert fast_meta(name, tuple(_meta(a) for a in args), {}) is None
