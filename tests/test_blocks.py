"""Blocks: shapes, gradients, MACs equal hand counts, bad input, ONNX export run on ONNX Runtime and OpenVINO."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.blocks import (ESPCN, ConvBNAct, DenseFeatBlock, GhostConv2d, MobileOneBlock, MobileOneUnit,
                               PartialConv2d, PixelShuffleUpsample, RepVGGBlock, SpaceToDepth, SpaceToDepthStem)
from edgedeploy.blocks._cost import cost
from edgedeploy.errors import ConfigError, ShapeError

# name -> (factory, input shape, expected output shape)
CASES = {
    "convbnact": (lambda: ConvBNAct(8, 16, 3, 2), (2, 8, 16, 16), (2, 16, 8, 8)),
    "s2d": (lambda: SpaceToDepthStem(3, 16), (2, 3, 16, 16), (2, 16, 8, 8)),
    "dense": (lambda: DenseFeatBlock(8, 16), (2, 8, 16, 16), (2, 16, 8, 8)),
    "ghost": (lambda: GhostConv2d(8, 16, 3, 2), (2, 8, 16, 16), (2, 16, 8, 8)),
    "ghost_odd": (lambda: GhostConv2d(8, 15, 3, 1), (2, 8, 8, 8), (2, 15, 8, 8)),
    "partial": (lambda: PartialConv2d(16), (2, 16, 12, 12), (2, 16, 12, 12)),
    "pixelshuffle": (lambda: PixelShuffleUpsample(16, 8, 2), (2, 16, 8, 8), (2, 8, 16, 16)),
    "espcn": (lambda: ESPCN(1, 3), (2, 1, 10, 12), (2, 1, 30, 36)),
    "repvgg": (lambda: RepVGGBlock(8, 8), (2, 8, 10, 10), (2, 8, 10, 10)),
    "repvgg_s2": (lambda: RepVGGBlock(8, 16, stride=2), (2, 8, 10, 10), (2, 16, 5, 5)),
    "mobileone_dw": (lambda: MobileOneBlock(8, 8, 3, 1, groups=8), (2, 8, 10, 10), (2, 8, 10, 10)),
    "mobileone_unit": (lambda: MobileOneUnit(8, 16, stride=2), (2, 8, 10, 10), (2, 16, 5, 5)),
}


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return model


@pytest.mark.parametrize("name", sorted(CASES))
def test_shape_and_gradients(name):
    torch.manual_seed(0)
    factory, in_shape, out_shape = CASES[name]
    block = factory().train()
    x = torch.randn(in_shape, requires_grad=True)
    y = block(x)
    assert tuple(y.shape) == out_shape
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for pname, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{name}.{pname} gets no gradient"


def test_space_to_depth_keeps_every_pixel():
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(1, 2, 4, 6)
    y = SpaceToDepth(2)(x)
    assert y.shape == (1, 8, 2, 3)
    assert sorted(y.flatten().tolist()) == sorted(x.flatten().tolist())
    assert y[0, 0, 1, 2] == x[0, 0, 2, 4] and y[0, 3, 0, 0] == x[0, 0, 1, 1]


def test_partial_conv_leaves_untouched_channels():
    block = PartialConv2d(16, act=None, norm=False).eval()
    x = torch.randn(1, 16, 8, 8)
    y = block(x)
    assert torch.equal(y[:, 4:], x[:, 4:])
    assert not torch.allclose(y[:, :4], x[:, :4])


# MACs by thop's rules: conv = out_elems * Cin/g * k*k, BN = 4 per element, ReLU/cat/shuffle = 0, bias = 1/out elem
def _conv(pos, cin, cout, k, g=1, bn=True, bias=False):
    return pos * cout * (cin // g * k * k + (4 if bn else 0) + (1 if bias else 0)), cin // g * k * k * cout + \
        (2 * cout if bn else 0) + (cout if bias else 0)


HAND = {
    # block, input shape, [(positions, cin, cout, k, groups, bn, bias)]
    "convbnact": (lambda: ConvBNAct(8, 16, 3, 2), (1, 8, 16, 16), [(64, 8, 16, 3, 1, True, False)]),
    "s2d": (lambda: SpaceToDepthStem(3, 16), (1, 3, 16, 16), [(64, 12, 16, 1, 1, True, False)]),
    "dense": (lambda: DenseFeatBlock(8, 16), (1, 8, 16, 16),
              [(64, 8, 12, 3, 1, True, False), (64, 12, 6, 1, 1, True, False), (64, 6, 4, 1, 1, True, False)]),
    "ghost": (lambda: GhostConv2d(8, 16, 3, 2), (1, 8, 16, 16),
              [(64, 8, 8, 3, 1, True, False), (64, 8, 8, 5, 8, True, False)]),
    "pixelshuffle": (lambda: PixelShuffleUpsample(16, 8, 2), (1, 16, 8, 8), [(64, 16, 32, 1, 1, False, True)]),
    "espcn": (lambda: ESPCN(1, 3), (1, 1, 10, 12), [(120, 1, 64, 5, 1, False, True), (120, 64, 32, 3, 1, False, True),
                                                    (120, 32, 9, 3, 1, False, True)]),
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_macs_equal_hand_count(name):
    factory, shape, convs = HAND[name]
    expect = [_conv(*c) for c in convs]
    c = cost(factory(), shape)
    assert c.macs == sum(e[0] for e in expect)
    assert c.params == sum(e[1] for e in expect)


def test_partial_conv_macs_hand_count():
    c = cost(PartialConv2d(16), (1, 16, 8, 8))
    assert c.macs == 64 * 4 * 4 * 9 + 4 * 16 * 64          # conv on 4 channels + BN on all 16
    assert c.params == 4 * 4 * 9 + 2 * 16


def test_repvgg_macs_before_and_after_fusion():
    block = RepVGGBlock(8, 8).eval()
    before = cost(block, (1, 8, 10, 10))
    # 3x3 + BN, 1x1 + BN, BN identity, two adds (thop: 0)
    assert before.macs == 100 * 8 * (72 + 4) + 100 * 8 * (8 + 4) + 100 * 8 * 4
    block.reparameterize()
    after = cost(block, (1, 8, 10, 10))
    assert after.macs == 100 * 8 * (72 + 1) and after.params == 8 * 72 + 8


@pytest.mark.parametrize("bad", [
    lambda: ConvBNAct(0, 8), lambda: ConvBNAct(8, 6, groups=4), lambda: GhostConv2d(8, -1),
    lambda: PartialConv2d(3), lambda: DenseFeatBlock(8, 1), lambda: ConvBNAct(8, 8, act="swishy"),
    lambda: SpaceToDepth(1), lambda: RepVGGBlock(6, 8, groups=4), lambda: MobileOneBlock(8, 8, num_branches=0),
])
def test_bad_configuration_raises_config_error(bad):
    with pytest.raises(ConfigError):
        bad()


def test_space_to_depth_rejects_odd_input():
    with pytest.raises(ShapeError, match="divisible by block_size=2"):
        SpaceToDepthStem(3, 8)(torch.zeros(1, 3, 15, 16))


@pytest.mark.parametrize("name", sorted(CASES))
def test_exports_to_onnx_and_runs_on_onnxruntime_and_openvino(name, tmp_path):
    import onnxruntime as ort
    import openvino as ov

    torch.manual_seed(1)
    factory, in_shape, _ = CASES[name]
    block = _randomize_bn(factory()).eval()
    x = torch.randn((1, *in_shape[1:]))
    with torch.no_grad():
        ref = block(x).numpy()
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(block, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["y"])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y_ort = sess.run(None, {"x": x.numpy()})[0]
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    y_ov = compiled(x.numpy())[0]
    assert y_ort.shape == ref.shape == y_ov.shape
    assert np.abs(y_ort - ref).max() < 1e-4
    assert np.abs(y_ov - ref).max() < 1e-4


@pytest.mark.slow
def test_all_blocks_in_one_net_through_export_onnx_dynamo_and_openvino(tmp_path):
    """The project's exporter (torch.export based) and OpenVINO runtime on a net made of every block."""
    from edgedeploy.export.onnx import export_onnx
    from edgedeploy.runtime import load

    torch.manual_seed(0)
    net = _randomize_bn(nn.Sequential(
        SpaceToDepthStem(3, 16), DenseFeatBlock(16, 32), GhostConv2d(32, 32, 3, 1), PartialConv2d(32),
        RepVGGBlock(32, 32), MobileOneUnit(32, 32), PixelShuffleUpsample(32, 8, 2), ESPCN(8, 2))).eval()
    x = torch.randn(1, 3, 32, 32)
    res = export_onnx(net, (x,), out=tmp_path)
    assert res.parity.max_abs < 1e-4
    assert res.op_histogram.get("DepthToSpace", 0) == 2 and "ConvTranspose" not in res.op_histogram
    with torch.no_grad():
        ref = net(x).numpy()
    y = load(res.path, runtime="openvino").run([x.numpy()])[0]
    assert y.shape == ref.shape == (1, 8, 32, 32)
    assert np.abs(y - ref).max() < 1e-4
