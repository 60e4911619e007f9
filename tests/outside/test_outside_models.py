"""Models nobody here wrote: timm's CNNs, ViTs, hybrids and re-parameterizable nets (random init) and MTCNN with
its real weights (facenet-pytorch), each through profile, check, export, quantize and prune.

Every step either succeeds or is refused with a clear error that the real tool confirms: a MyriadX ops verdict
of PASS means the blob compiles, FAIL means it does not; MACs equal an independent counter (fvcore; ptflops' aten
backend is slower, fvcore's conv/linear/matmul count is exact); the output shape survives quantization and
pruning, and pruning honours the asked amount (or refuses, naming what it cannot follow).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import torchvision_absent

with torchvision_absent.absent():            # only while timm and facenet-pytorch import (see the module)
    timm = pytest.importorskip("timm")
    facenet_pytorch = pytest.importorskip("facenet_pytorch")
timm.layers.set_fused_attn(False)          # explicit q @ k matmuls, which the independent counter sees too

from edgedeploy.errors import EdgeDeployError  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

TIMM = {   # name: (input side, extra create_model kwargs); small inputs keep the suite fast
    "resnet18": (32, {}), "mobilenetv3_small_100": (32, {}), "efficientnet_b0": (32, {}),
    "ghostnet_100": (32, {}), "regnetx_002": (32, {}), "repvgg_a0": (32, {}), "mobileone_s0": (32, {}),
    "convnext_atto": (32, {}), "fastvit_t8": (32, {}), "mobilevit_xxs": (32, {}),
    "vit_tiny_patch16_224": (32, {"img_size": 32}), "levit_128s": (32, {"img_size": 32}),
}


def _timm(name: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    side, kwargs = TIMM[name]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=10, **kwargs).eval()
    return model, (1, 3, side, side)


def _mtcnn(name: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    from facenet_pytorch import ONet, PNet, RNet   # imported at the top, beside the stand-in torchvision

    net, shape = {"pnet": (PNet, (1, 3, 48, 48)), "rnet": (RNet, (1, 3, 24, 24)), "onet": (ONet, (1, 3, 48, 48))}[name]
    return net(pretrained=True).eval(), shape          # the real weights shipped in the wheel


# channel pruning refuses these, naming what it cannot follow: ViT-style attention (prune heads/FFN instead)
# and two hybrids whose graphs Torch-Pruning's dependency tracing fails on
PRUNE_REFUSED = {"vit_tiny_patch16_224", "mobilevit_xxs", "levit_128s", "fastvit_t8"}

MODELS = [pytest.param(_timm, n, id=n) for n in TIMM] + \
    [pytest.param(_mtcnn, n, id=f"mtcnn-{n}") for n in ("pnet", "rnet", "onet")]


def _fvcore(model: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """fvcore's count of conv, linear and matmul (one fused multiply-add = one flop = one MAC, no bias adds)."""
    import logging

    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    fca = FlopCountAnalysis(model, torch.zeros(shape)).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return int(sum(v for k, v in fca.by_operator().items() if k in ("conv", "linear", "matmul", "bmm", "einsum")))


def test_mtcnn_weights_are_real():
    """Trained weights, not random init: PNet's face-probability conv is far from its init statistics."""
    model, _ = _mtcnn("pnet")
    w = model.conv4_1.weight.detach()
    torch.manual_seed(0)
    fresh = type(model)(pretrained=False).conv4_1.weight.detach()
    assert not torch.allclose(w, fresh) and float(w.abs().max()) > 2 * float(fresh.abs().max())


@pytest.mark.parametrize(("factory", "name"), MODELS)
def test_outside_model_through_every_step(factory, name, tmp_path):
    from edgedeploy.compress.prune import PruneConfig, prune
    from edgedeploy.compress.quantize import QuantConfig, quantize
    from edgedeploy.metrics.profile import profile
    from edgedeploy.run.export import ExportConfig, export
    from edgedeploy.targets.check import check

    model, shape = factory(name)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out_shape = tuple(model(x)[0].shape if isinstance(model(x), tuple) else model(x).shape)

    # profile: MACs equal an independent counter
    prof = profile(model, shape)
    assert prof.macs == _fvcore(model, shape), prof.unsupported

    # check: three targets; the MyriadX op verdict is what its compiler does to the blob step's graph
    assert check(model, "cpu", input_shape=shape).status in ("PASS", "UNKNOWN")
    myriad = check(model, "myriadx", input_shape=shape)
    htp = check(model, "qualcomm-htp", input_shape=shape)
    assert myriad["ops"].status in ("PASS", "FAIL") and htp["ops"].status in ("PASS", "FAIL"), htp["ops"]
    if hasattr(model, "reparameterize") or any(hasattr(m, "reparameterize") for m in model.modules()):
        assert any("deploy form" in n for n in myriad.notes)

    # export: ONNX + OpenVINO IR verified on varied inputs; the blob agrees with the MyriadX verdict
    results = export(model, ExportConfig(to=("onnx", "openvino"), exporter="torchscript", opset=17),
                     input_shape=shape, out=tmp_path / "x")
    assert [r.format for r in results] == ["onnx", "openvino"] and all(r.parity.checked for r in results)
    try:
        blob = export(model, ExportConfig(to=("blob",)), input_shape=shape, out=tmp_path / "b")
        compiled = blob[0].details["blob"]["stages"] > 0
    except EdgeDeployError as exc:
        compiled = False
        assert str(exc) and "\n" not in str(exc).strip()
    assert compiled == (myriad["ops"].status == "PASS"), (myriad["ops"].message, compiled)

    # quantize: the output shape is kept and every output is measured
    calib = np.random.default_rng(0).standard_normal((16, *shape[1:])).astype(np.float32)
    q = quantize(model, QuantConfig(mode="int8-static", latency_repeats=2), calibration=calib, out=tmp_path / "q",
                 latency=False, per_layer=False)
    assert q.report.outputs and all(math.isfinite(o.cosine_mean) for o in q.report.outputs)
    from edgedeploy.runtime import load

    assert load(q.path).run(x.numpy())[0].shape == out_shape

    # prune: output shape kept, and no layer loses more than asked (or the report says where and why)
    try:
        p = prune(model, PruneConfig(granularity="channel", amount=0.3), x, progress=False)
    except EdgeDeployError as exc:                  # attention, or a graph Torch-Pruning cannot follow: refused
        assert "PruneConfig.ignored" in str(exc) and name in PRUNE_REFUSED, exc
        return
    with torch.no_grad():
        got = p.model(x)
    assert tuple((got[0] if isinstance(got, tuple) else got).shape) == out_shape
    over = [c for c in p.report.layers if c.unit == "channels" and c.before[0] and
            c.removed_fraction > 0.3 + 1.0 / c.before[0] + 1e-9]
    assert not over or any("cut more than asked" in n for n in p.report.notes), [c.name for c in over]
