"""The two detector variants: blocks used, costs, zoo names, ONNX export (both exporters) with MyriadX-only ops."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from edgedeploy import zoo
from edgedeploy.blocks import DenseFeatBlock, PartialConv2d, PixelShuffleUpsample, SpaceToDepthStem
from edgedeploy.errors import ConfigError, ShapeError
from edgedeploy.metrics.profile import profile
from edgedeploy.zoo.headbody import INPUT_SHAPE, HeadBodyConfig, build


def _has(model: nn.Module, cls: type) -> int:
    return sum(isinstance(m, cls) for m in model.modules())


def test_variants_use_the_tutorial_choices() -> None:
    base, hw = build("baseline"), build("hw-aware")
    assert _has(base, nn.ConvTranspose2d) == 3 and _has(base, SpaceToDepthStem) == 0
    assert _has(hw, nn.ConvTranspose2d) == 0
    assert _has(hw, SpaceToDepthStem) == 1 and _has(hw, DenseFeatBlock) == 3
    assert _has(hw, PartialConv2d) == 2 and _has(hw, PixelShuffleUpsample) == 3     # PConv at strides 4 and 8
    assert hw.enc4[0].conv.conv.out_channels == 16 and hw.neck.conv.kernel_size == (3, 3)
    assert base.config.name == "baseline" and hw.config.name == "hw-aware"
    assert HeadBodyConfig(up="pixelshuffle").name == "baseline+pixelshuffle"
    assert set(zoo.available()) >= {"headbody", "headbody-baseline", "headbody-hw"}
    assert zoo.create("headbody-hw").config.name == "hw-aware"
    assert zoo.create("headbody", variant="baseline", widths=(8, 16, 16, 32)).config.widths == (8, 16, 16, 32)
    with torch.no_grad():
        for m in (base, hw):
            assert m(torch.rand(INPUT_SHAPE)).shape == (1, 6, 88, 320)


def test_hw_aware_costs_less_per_frame() -> None:
    pb = profile(build("baseline"), INPUT_SHAPE, precision="fp16", fps=30)
    ph = profile(build("hw-aware"), INPUT_SHAPE, precision="fp16", fps=30)
    assert not pb.unsupported and not ph.unsupported                     # every op counted
    assert ph.macs < 0.45 * pb.macs and ph.params < 0.65 * pb.params
    assert 900e6 < pb.macs < 1.1e9 and 350e6 < ph.macs < 480e6
    # the S2D stem never writes the 176x640 map of the baseline's first strided conv
    assert not any(r.output_shapes and tuple(r.output_shapes[0][-2:]) == (176, 640) for r in ph.layers)
    assert any(r.output_shapes and tuple(r.output_shapes[0][-2:]) == (176, 640) for r in pb.layers)


def test_bad_inputs_and_configs() -> None:
    with pytest.raises(ShapeError, match="multiples of 32"):
        build("hw-aware")(torch.zeros(1, 1, 350, 1280))
    with pytest.raises(ShapeError, match="grayscale"):
        build("baseline")(torch.zeros(1, 3, 352, 1280))
    with pytest.raises(ConfigError, match="choose one of"):
        HeadBodyConfig(up="bilinear")
    with pytest.raises(ConfigError, match="multiple of 4"):
        HeadBodyConfig(widths=(24, 48, 64))
    with pytest.raises(ConfigError, match="unknown head/body variant"):
        build("tiny")


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_both_variants_export_with_myriadx_ops_only(tmp_path, exporter) -> None:
    pytest.importorskip("onnxscript")
    from edgedeploy.export.myriad_ops import myriad_supported_ops
    from edgedeploy.export.onnx import OnnxConfig, export_onnx

    x = torch.rand(INPUT_SHAPE, generator=torch.Generator().manual_seed(0))
    for variant in ("baseline", "hw-aware"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = export_onnx(build(variant), (x,), OnnxConfig(exporter=exporter, opset=13), out=tmp_path,
                              name=variant)
        assert res.parity.max_abs < 1e-4
        ops = set(res.op_histogram)
        assert ops <= myriad_supported_ops(), ops - myriad_supported_ops()
        assert not ops & {"GridSample", "HardSigmoid", "NonMaxSuppression", "TopK"}   # decode stays on the host
        assert ("ConvTranspose" in ops) == (variant == "baseline")
        assert ("DepthToSpace" in ops) == (variant == "hw-aware")
        if exporter == "torchscript":
            assert res.details["opset"] == 13
