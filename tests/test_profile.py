"""Profiler correctness: hand counts, published totals, the tutorial's rows, liveness, traffic, energy."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from edgedeploy.errors import ConfigError, ModelRunError, ShapeError
from edgedeploy.metrics.counting import MacRules
from edgedeploy.metrics.energy import PJ_45NM, EnergyConfig
from edgedeploy.metrics.profile import ProfileConfig, profile
from edgedeploy.zoo.reference import MobileNetV2, ResNet18

THOP = ProfileConfig(rules=MacRules.thop())


@pytest.mark.parametrize("layer, shape, macs", [
    (nn.Conv2d(3, 8, 3, padding=1, bias=False), (1, 3, 32, 32), 32 * 32 * 8 * 3 * 9),
    (nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), (1, 16, 16, 16), 16 * 16 * 16 * 9),      # depthwise
    (nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=4, bias=False), (2, 16, 16, 16), 2 * 8 * 8 * 32 * 4 * 9),
    (nn.Conv2d(4, 6, (1, 5), padding=(0, 2)), (1, 4, 10, 10), 10 * 10 * 6 * 4 * 5),                  # bias: not a MAC
    (nn.ConvTranspose2d(8, 4, 2, stride=2), (1, 8, 5, 5), 5 * 5 * 8 * 4 * 4),                         # in x Cout x k
    (nn.Linear(20, 10), (4, 20), 4 * 20 * 10),
    (nn.Linear(20, 10), (2, 7, 20), 2 * 7 * 20 * 10),
    (nn.Conv1d(4, 8, 3), (1, 4, 12), 10 * 8 * 4 * 3),
])
def test_hand_counts(layer: nn.Module, shape: tuple[int, ...], macs: int) -> None:
    p = profile(layer, shape)
    assert p.macs == macs
    assert p.params == sum(x.numel() for x in layer.parameters())


def test_resnet18_published_totals() -> None:
    p = profile(ResNet18(), (1, 3, 224, 224))
    assert p.macs == pytest.approx(1.82e9, rel=0.005)          # 1.814 G
    assert p.params == pytest.approx(11.69e6, rel=0.001)        # 11,689,512
    assert not p.unsupported


def test_mobilenetv2_published_totals() -> None:
    p = profile(MobileNetV2(), (1, 3, 224, 224))
    assert p.macs == pytest.approx(300e6, rel=0.01)             # 300.8 M
    assert p.params == pytest.approx(3.50e6, rel=0.005)          # 3,504,872


def test_vit_s16_published_totals() -> None:
    from edgedeploy.zoo.reference import ViTSmall16

    p = profile(ViTSmall16(), (1, 3, 224, 224))
    assert p.macs == pytest.approx(4.6e9, rel=0.005)             # timm vit_small_patch16_224: 4.6 GMACs
    assert p.params == pytest.approx(22.05e6, rel=0.005)         # 22,050,664 (timm: 22.1 M)
    assert not p.unsupported


def _cbr(cin: int, cout: int, stride: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


# The tutorial's "Conv2D + BN + ReLU" rows: one layer at the head/body detector's 352x1280 input,
# counted like thop (BN = 4 ops/element, ReLU = 0); the S2D/DenseFeat/Ghost tables use stride 2.
@pytest.mark.parametrize("cin, cout, stride, macs, params", [
    (1, 32, 2, 46.858e6, 352),
    (32, 64, 2, 2.105e9, 18_560),
    (64, 128, 2, 8.362e9, 73_984),
    (32, 32, 1, 4.21e9, 9_280),
    (64, 64, 1, 16.725e9, 36_992),
])
def test_tutorial_conv_bn_relu_rows(cin: int, cout: int, stride: int, macs: float, params: int) -> None:
    p = profile(_cbr(cin, cout, stride), (1, cin, 352, 1280), config=THOP)
    assert p.macs == pytest.approx(macs, rel=5e-4)
    assert p.params == params
    # the default (published-totals) convention counts the conv only
    assert profile(_cbr(cin, cout, stride), (1, cin, 352, 1280)).macs < p.macs


class _Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 16, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.conv(x), x.repeat(1, 4, 1, 1)], dim=1)                  # 1x32x8x8
        y = F.pixel_shuffle(y, 2)                                                    # 1x8x16x16
        y = F.interpolate(y, scale_factor=0.5, mode="bilinear", align_corners=False)  # 1x8x8x8
        grid = torch.zeros(1, 8, 8, 2)
        y = F.grid_sample(y, grid, align_corners=False)
        t = y.flatten(2).transpose(1, 2)                                             # 1x64x8
        att = F.scaled_dot_product_attention(t[:, None], t[:, None], t[:, None])[:, 0]
        return (t @ att.transpose(1, 2)) * 2.0 + 1.0


def test_functional_ops_are_seen() -> None:
    p = profile(_Functional(), (1, 4, 8, 8))
    ops = {r.op for r in p.layers}
    assert {"cat", "pixel_shuffle", "upsample_bilinear2d", "grid_sampler", "scaled_dot_product_attention",
            "matmul", "mul", "add", "Conv2d"} <= ops
    by_op = {r.op: r for r in p.layers}
    assert by_op["matmul"].macs == 64 * 64 * 8                       # (64x8)·(8x64)
    assert by_op["scaled_dot_product_attention"].macs == 64 * 64 * (8 + 8)
    assert by_op["grid_sampler"].elem_ops == 4 * 8 * 64              # bilinear: 4 taps per output
    assert by_op["cat"].write_bytes == 32 * 64 * 4
    assert not p.unsupported


def test_unsupported_ops_are_reported_not_dropped() -> None:
    class FFT(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fft.rfft(x).abs()

    p = profile(FFT(), (1, 16))
    assert p.unsupported and all(v >= 1 for v in p.unsupported.values())
    assert "ops without a counting rule" in str(p)


def test_peak_activation_is_liveness_not_sum() -> None:
    chain = nn.Sequential(nn.Conv2d(1, 4, 1), nn.Conv2d(4, 8, 1), nn.Conv2d(8, 2, 1))
    p = profile(chain, (1, 1, 8, 8))
    sizes = [c * 64 * 4 for c in (1, 4, 8, 2)]                     # input and three outputs, fp32
    assert p.peak_activation_bytes == max(a + b for a, b in zip(sizes, sizes[1:]))   # 4ch + 8ch live at once
    assert p.peak_activation_bytes < sum(sizes)
    assert profile(chain, (1, 1, 8, 8), precision="fp16").peak_activation_bytes == p.peak_activation_bytes // 2


def test_skip_connection_keeps_tensor_alive() -> None:
    class Skip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.b(self.a(x))

    p = profile(Skip(), (1, 4, 8, 8))
    one = 4 * 64 * 4
    assert p.peak_activation_bytes == 3 * one                      # x stays live while a and b run


def test_traffic_and_bandwidth() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    p = profile(conv, (1, 3, 32, 32), fps=30)
    (row,) = p.layers
    assert row.weight_bytes == 8 * 3 * 9 * 4
    assert row.read_bytes == 3 * 32 * 32 * 4 and row.write_bytes == 8 * 32 * 32 * 4
    assert p.traffic_bytes == row.weight_bytes + row.read_bytes + row.write_bytes
    assert p.bandwidth_gbps == pytest.approx(p.traffic_bytes * 30 / 1e9)
    p8 = profile(conv, (1, 3, 32, 32), precision="int8")
    assert p8.traffic_bytes * 4 == p.traffic_bytes
    assert p.model_size_bytes == {"fp32": 864, "fp16": 432, "int8": 216}


def test_energy_follows_the_tutorial_table() -> None:
    lin = nn.Linear(64, 64, bias=False)
    sram = EnergyConfig(weights_in="sram", activations_in="sram")
    p32 = profile(lin, (1, 64), config=ProfileConfig(energy=sram))
    p8 = profile(lin, (1, 64), precision="int8", config=ProfileConfig(energy=sram))
    assert p32.energy.compute_uj == pytest.approx(64 * 64 * (3.7 + 0.9) * 1e-6)
    assert p8.energy.compute_uj == pytest.approx(64 * 64 * (0.2 + 0.1) * 1e-6)   # int8 mult, 32-bit accumulate
    words = p32.traffic_bytes / 4
    assert p32.energy.sram_uj == pytest.approx(words * PJ_45NM["sram_read_32b"] * 1e-6)
    dram = profile(lin, (1, 64), config=ProfileConfig(energy=EnergyConfig(weights_in="dram", activations_in="dram")))
    assert dram.energy.dram_uj == pytest.approx(words * 640 * 1e-6)
    assert "DRAM" in dram.energy.assumption
    with pytest.raises(ConfigError, match="weights_in"):
        EnergyConfig(weights_in="flash")


def test_json_roundtrip(tmp_path) -> None:
    p = profile(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), (1, 1, 8, 8), fps=10)
    d = json.loads(p.to_json(tmp_path / "p.json"))
    assert d["totals"]["macs"] == p.macs and len(d["layers"]) == 2
    assert json.loads((tmp_path / "p.json").read_text()) == d


def test_fake_and_real_execution_agree() -> None:
    m = MobileNetV2()
    fake = profile(m, (1, 3, 96, 96), config=ProfileConfig(execute="fake"))
    real = profile(m, (1, 3, 96, 96), config=ProfileConfig(execute="real"))
    assert fake.layers == real.layers and fake.peak_activation_bytes == real.peak_activation_bytes


def test_data_dependent_model_falls_back_to_real_execution() -> None:
    class Gate(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 if x.sum() > 0 else x - 1

    (row,) = profile(Gate(), torch.ones(1, 4)).layers      # a childless model is one leaf row
    assert row.ops == ("sum", "gt", "mul")


def test_bad_input_errors() -> None:
    with pytest.raises(ModelRunError, match="forward failed on input 1x3x8x8"):
        profile(nn.Conv2d(1, 2, 3), (1, 3, 8, 8))
    with pytest.raises(ConfigError, match="precision"):
        profile(nn.ReLU(), (1, 2), precision="int4")
    with pytest.raises(ShapeError):
        profile(nn.ReLU(), None)
    with pytest.raises(ConfigError, match="fps"):
        profile(nn.ReLU(), (1, 2), fps=0)
