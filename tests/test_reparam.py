"""reparameterize(): branches and BN folded into single convs with identical outputs, fewer MACs, checked parity."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.blocks import (ConvBNAct, MobileOneBlock, MobileOneUnit, ReparamConfig, RepVGGBlock,
                               reparameterize)
from edgedeploy.blocks.repvgg import RepVGGBlock as _RepVGG
from edgedeploy.errors import ConfigError, ModelRunError, ParityError, ShapeError


def _net() -> nn.Module:
    return nn.Sequential(
        ConvBNAct(3, 8, 3, 2), RepVGGBlock(8, 8), RepVGGBlock(8, 16, stride=2), MobileOneUnit(16, 16),
        MobileOneUnit(16, 24, stride=2), MobileOneBlock(24, 24, 5, 1, groups=24, num_branches=2),
        nn.Sequential(nn.Conv2d(24, 8, 1, bias=True), nn.BatchNorm2d(8)),
    )


def _trained(model: nn.Module, seed: int = 0, steps: int = 5) -> nn.Module:
    """A few SGD steps in train mode so the BN running statistics and affine parameters are far from identity."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(steps):
        x = torch.randn(8, 3, 32, 32, generator=g) * 2 + 0.5
        loss = (model(x) - 1.0).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for m in model.modules():   # make sure no BN is the identity map
        if isinstance(m, nn.BatchNorm2d):
            assert not torch.allclose(m.running_var, torch.ones_like(m.running_var))
    return model.eval()


def test_reparameterize_keeps_outputs_and_cuts_macs():
    model = _trained(_net())
    res = reparameterize(model, (2, 3, 32, 32))
    rep = res.report
    assert rep.blocks_reparameterized == 2 + 2 * 2 + 1
    assert rep.conv_bn_fused == 2          # the ConvBNAct stem and the Sequential conv + BN
    assert rep.max_abs_error < 1e-10       # fused in float64: exact up to rounding
    assert rep.max_abs_error_fp32 < 1e-4
    assert rep.macs_after < 0.6 * rep.macs_before
    assert rep.params_after < rep.params_before
    assert rep.latency_before_ms > 0 and rep.latency_after_ms > 0
    bns = [m for m in res.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns == []
    convs = [m for m in res.model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 2 + 4 + 1 + 1
    # the user's model is untouched and still in train-capable form
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(1, 3, 48, 40)      # another shape than the check's
    with torch.no_grad():
        assert torch.allclose(model(x), res.model(x), atol=1e-4)


@pytest.mark.parametrize("block,shape", [
    (lambda: RepVGGBlock(8, 8), (1, 8, 9, 9)),
    (lambda: RepVGGBlock(8, 16, stride=2, groups=2), (1, 8, 9, 9)),
    (lambda: MobileOneBlock(8, 8, 3, 1, groups=8), (1, 8, 9, 9)),
    (lambda: MobileOneBlock(8, 12, 1, 1), (1, 8, 9, 9)),
    (lambda: MobileOneBlock(8, 8, 3, 2, groups=8, num_branches=1), (1, 8, 9, 9)),
])
def test_each_block_fuses_exactly(block, shape):
    torch.manual_seed(3)
    b = block()
    for m in b.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.3, 3)
            m.weight.data.uniform_(-1.5, 1.5)
            m.bias.data.uniform_(-1, 1)
    res = reparameterize(b, shape)
    assert res.report.max_abs_error < 1e-10
    assert res.report.max_abs_error_fp32 < 1e-5
    assert res.model.reparam_conv is not None


def test_wrong_fusion_is_caught(monkeypatch):
    """A reparameterize() that drops the identity branch must fail the parity check."""
    def broken(self):
        with torch.no_grad():
            from edgedeploy.blocks._fuse import branch_kernel, fused_conv
            k = [branch_kernel(b, self.out_ch, self.groups, 3) for b in (self.rbr_dense, self.rbr_1x1)]
            self.reparam_conv = fused_conv(self.rbr_dense.conv, k[0][0] + k[1][0], k[0][1] + k[1][1])

    monkeypatch.setattr(_RepVGG, "reparameterize", broken)
    model = _trained(nn.Sequential(ConvBNAct(3, 8), RepVGGBlock(8, 8)))
    with pytest.raises(ParityError, match="outputs differ"):
        reparameterize(model, (1, 3, 16, 16))


def test_reparameterized_model_exports_as_plain_convs(tmp_path):
    import onnx
    import onnxruntime as ort

    res = reparameterize(_trained(_net()), (1, 3, 32, 32), ReparamConfig(repeats=2, warmup=1))
    x = torch.randn(1, 3, 32, 32)
    path = tmp_path / "rep.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(res.model, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"])
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ops <= {"Conv", "Relu"}, ops
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(y - res.model(x).numpy()).max() < 1e-4


def test_bad_input_is_a_clear_error():
    with pytest.raises(ConfigError, match="torch.nn.Module"):
        reparameterize("model.pt", (1, 3, 8, 8))
    with pytest.raises(ModelRunError, match="failed on input 1x5x8x8"):
        reparameterize(nn.Sequential(RepVGGBlock(3, 8)), "1x5x8x8")
    with pytest.raises(ShapeError, match="positive ints"):
        reparameterize(nn.Sequential(RepVGGBlock(3, 8)), (1, 3, -8, 8))


@pytest.mark.slow
def test_reparameterized_digits_net_keeps_accuracy_on_real_data():
    """Train a RepVGG/MobileOne net on sklearn's real digits; the fused net predicts exactly the same classes."""
    from edgedeploy.zoo.digits import accuracy, load_digits_data, train_classifier

    torch.manual_seed(0)
    data = load_digits_data()
    model = nn.Sequential(RepVGGBlock(1, 8), RepVGGBlock(8, 16, stride=2), MobileOneUnit(16, 16, num_branches=2),
                          MobileOneUnit(16, 32, stride=2, num_branches=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(32, 10))
    train_classifier(model, data, epochs=3, seed=0)
    acc_before = accuracy(model, data.x_test, data.y_test)
    res = reparameterize(model, (1, 1, 16, 16), ReparamConfig(repeats=3))
    assert acc_before > 60.0                                          # 73.7 % measured (chance: 10 %)
    assert accuracy(res.model, data.x_test, data.y_test) == acc_before
    with torch.no_grad():
        assert torch.equal(model.eval()(data.x_test).argmax(1), res.model(data.x_test).argmax(1))
    assert res.report.macs_after < 0.6 * res.report.macs_before
