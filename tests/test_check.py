"""check(): verdicts computed by hand on built Profiles, then on real models through the profiler."""
from __future__ import annotations

import json

import pytest

from edgedeploy.errors import ConfigError, TargetError
from edgedeploy.metrics.types import EnergyEstimate, LayerStats, Profile
from edgedeploy.targets.check import CheckReport, check
from edgedeploy.targets.latency import roofline
from edgedeploy.targets.target import Target, normalize_op


def _layer(name, op, macs=0, elem_ops=0, traffic=0, ops=None):
    return LayerStats(name=name, op=op, input_shapes=((1, 8, 4, 4),), output_shapes=((1, 8, 4, 4),), params=0,
                      macs=macs, elem_ops=elem_ops, weight_bytes=0, read_bytes=traffic, write_bytes=0,
                      ops=tuple(ops if ops is not None else (op,)))


def _profile(layers, precision="fp16", params=1000, peak_act=4000, fps=None, source="torch"):
    return Profile(model="hand", input_shapes=[(1, 8, 4, 4)], precision=precision, layers=layers, params=params,
                   macs=sum(r.macs for r in layers), elem_ops=sum(r.elem_ops for r in layers),
                   model_size_bytes={"fp32": 4 * params, "fp16": 2 * params, "int8": params},
                   peak_activation_bytes=peak_act, traffic_bytes=sum(r.traffic_bytes for r in layers),
                   energy=EnergyEstimate(0.0, 0.0, 0.0, "none"), fps=fps, source=source)


def _target(**kw):
    base = dict(name="toy", description="toy device", precisions=("fp16",), peak_ops_per_s={"fp16": 1e12},
                memory_bandwidth_gbps=10.0, bandwidth_share=0.5, memory_bytes=10_000, memory_share=1.0,
                latency_budget_ms=(24.0, 30.0), min_fps=27.0,
                supported_ops=frozenset(map(normalize_op, ["Conv2d", "ReLU", "cat"])))
    base.update(kw)
    return Target(**base)


def test_roofline_and_verdicts_by_hand():
    # conv: 2e9 ops / 1e12 = 2 ms compute vs 1e6 B / 5e9 B/s = 0.2 ms -> compute-bound 2 ms
    # relu: 1e5 ops / 1e12 = 1e-4 ms vs 2e6 B / 5e9 B/s = 0.4 ms -> memory-bound 0.4 ms
    prof = _profile([_layer("conv", "Conv2d", macs=10**9, traffic=10**6),
                     _layer("act", "ReLU", elem_ops=10**5, traffic=2 * 10**6)])
    report = check(prof, _target())
    assert isinstance(report, CheckReport)
    assert [r.bound for r in report.layers] == ["compute", "memory"]
    assert report.layers[0].latency_ms == pytest.approx(2.0)
    assert report.layers[1].latency_ms == pytest.approx(0.4)
    assert report.latency_ms == pytest.approx(2.4)
    assert report["latency"].passed and report["latency"].measured == pytest.approx(2.4)
    assert report["latency"].limit == 30.0
    assert report["fps"].measured == pytest.approx(1000 / 2.4) and report["fps"].limit == 27
    assert report["bandwidth"].measured == pytest.approx(3e6 * 27 / 1e9)      # at the target's min FPS
    assert report["bandwidth"].limit == pytest.approx(5.0)
    assert report["memory"].measured == pytest.approx((2 * 1000 + 4000) / 1e6)   # fp16 weights + peak acts
    assert report["precision"].passed and report["ops"].passed
    assert report.passed and report.failures == []


def test_each_budget_can_fail():
    prof = _profile([_layer("conv", "Conv2d", macs=20 * 10**9, traffic=10**9)], params=4000, peak_act=8000)
    report = check(prof, _target(), fps=60)
    # 4e10 ops / 1e12 = 40 ms compute, 1e9 B / 5e9 = 200 ms memory -> 200 ms
    assert report.latency_ms == pytest.approx(200.0)
    assert not report["latency"].passed and "over the 24-30 ms budget" in report["latency"].message
    assert not report["fps"].passed and report["fps"].limit == 60 and report["fps"].measured == pytest.approx(5.0)
    assert not report["bandwidth"].passed and report["bandwidth"].measured == pytest.approx(60.0)
    assert not report["memory"].passed and report["memory"].measured == pytest.approx(16000 / 1e6)
    assert not report.passed and {v.name for v in report.failures} == {"latency", "fps", "bandwidth", "memory"}


def test_unsupported_ops_name_the_op_and_layers():
    prof = _profile([_layer("enc.conv", "Conv2d"), _layer("dec.warp", "grid_sampler_2d"),
                     _layer("dec.warp2", "grid_sampler_2d"), _layer("blk", "MyBlock", ops=("conv2d", "relu")),
                     _layer("fuse", "Fuse", ops=("cat", "grid_sampler"))])
    target = _target(supported_ops=frozenset(map(normalize_op, ["Conv2d", "conv2d", "relu", "cat"])))
    verdict = check(prof, target)["ops"]
    assert not verdict.passed and verdict.measured == 2
    assert "grid_sampler_2d (used by dec.warp, dec.warp2)" in verdict.message
    assert "grid_sampler in Fuse (used by fuse)" in verdict.message
    assert "MyBlock" not in verdict.message          # a custom leaf made of supported ops passes
    assert check(prof, Target.load("cpu"))["ops"].passed


def test_onnx_profiles_use_onnx_op_names():
    prof = _profile([_layer("c", "Conv"), _layer("g", "GridSample")], source="onnx")
    verdict = check(prof, Target.load("myriadx"))["ops"]
    assert not verdict.passed and "GridSample" in verdict.message and "Conv " not in verdict.message
    htp = check(prof, Target.load("qualcomm-htp"))["ops"]     # listed, but only the compiler can say PASS
    assert htp.passed is None and htp.unknown and "compiler was not run" in htp.message
    unknown = check(prof, _target())["ops"]          # a target with only torch op names cannot judge ONNX ops
    assert unknown.passed is None and "supported_onnx_ops" in unknown.message


def test_precision_verdicts():
    prof = _profile([_layer("conv", "Conv2d", macs=10**6)], precision="fp32")
    v = check(prof, Target.load("myriadx"))["precision"]
    assert not v.passed and "fp16" in v.message and v.measured == "fp32"
    with pytest.raises(ConfigError, match="made at fp32"):
        check(prof, "myriadx", precision="fp16")
    with pytest.raises(ConfigError, match="unknown precision"):
        check(prof, "myriadx", precision="fp12")


def test_targets_without_budgets_give_informative_verdicts():
    prof = _profile([_layer("conv", "Conv2d", macs=10**6, traffic=1000)], precision="fp32")
    report = check(prof, Target.load("cpu"))
    assert report["latency"].passed is None and report["fps"].passed is None
    assert report["bandwidth"].passed is None
    assert report.passed
    assert check(prof, "cpu", fps=30)["bandwidth"].passed is True


def test_report_serializes_and_renders(tmp_path):
    prof = _profile([_layer("conv", "Conv2d", macs=10**9, traffic=10**6)], fps=30)
    report = check(prof, _target())
    out = tmp_path / "report.json"
    text = report.to_json(out)
    data = json.loads(out.read_text())
    assert json.loads(text) == data
    assert data["passed"] is True and data["fps"] == 30 and data["target"] == "toy"
    assert [v["name"] for v in data["verdicts"]] == ["precision", "fp16 range", "ops", "memory", "latency", "fps",
                                                     "bandwidth"]
    assert data["verdicts"][1]["status"] == "info"         # a bare Profile: no model to run for value ranges
    assert data["layers"][0]["latency_ms"] == pytest.approx(2.0) and data["layers"][0]["bound"] == "compute"
    shown = str(report)
    assert "hand on toy (fp16, 30 FPS): PASS" in shown and "bandwidth" in shown and "slowest layers" in shown
    with pytest.raises(KeyError, match="no verdict 'speed'"):
        report["speed"]


def test_check_bad_arguments():
    prof = _profile([_layer("conv", "Conv2d")])
    with pytest.raises(TargetError, match="valid targets"):
        check(prof, "tpu")
    with pytest.raises(ConfigError, match="fps must be > 0"):
        check(prof, _target(), fps=0)


# ---------------------------------------------------------------- real models through the profiler

torch = pytest.importorskip("torch")


class _Warp(torch.nn.Module):
    def forward(self, x):
        grid = torch.zeros(x.shape[0], x.shape[2], x.shape[3], 2)
        return torch.nn.functional.grid_sample(x, grid, align_corners=False)


class _Gaze(torch.nn.Module):
    """A conv + pixel-shuffle decoder that warps its input with grid_sample, as gaze-correction models do."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.warp = _Warp()

    def forward(self, x):
        return torch.nn.functional.pixel_shuffle(self.conv(self.warp(x)), 2)


def test_check_profiles_a_real_model_at_the_target_precision():
    from edgedeploy.zoo.digits import DigitsCNN

    torch.manual_seed(0)
    model = DigitsCNN()
    report = check(model, "myriadx", input_shape=(1, 1, 16, 16))
    assert report.precision == "fp16" and report.passed
    from edgedeploy.metrics.profile import profile

    prof = profile(model, (1, 1, 16, 16), precision="fp16")
    # hand count: 16*1*9*256 + 32*16*9*64 + 2*(32*32*9*64) + 64*32*9*16 + 64*10
    assert prof.macs == 1_806_976
    ops = sum(r.compute_ms * 1e-3 * 1e12 for r in report.layers)      # myriadx peak: 1e12 ops/s
    assert ops == pytest.approx(2 * prof.macs + prof.elem_ops)       # 2 ops per MAC + element-wise ops
    tgt = Target.load("myriadx")
    # myriadx is calibrated: each layer's roofline time x its op class's factor, plus per-layer and fixed costs
    from edgedeploy.targets.latency import estimate_latency

    est = estimate_latency(prof, tgt)
    assert est.calibrated and report.latency_ms == pytest.approx(est.ms)
    roof = roofline(prof, tgt, "fp16")
    assert [r.compute_ms for r in report.layers] == pytest.approx([r.compute_ms for r in roof])
    assert report.latency_ms > sum(r.latency_ms for r in roof)          # the device runs below the roofline
    assert report["latency"].passed and est.high_ms < 30
    assert report["memory"].measured == pytest.approx((prof.model_size_bytes["fp16"] + prof.peak_activation_bytes) / 1e6)
    assert report["bandwidth"].measured == pytest.approx(prof.traffic_bytes * 27 / 1e9)


def test_grid_sample_model_fails_on_myriadx_not_on_htp():
    report = check(_Gaze(), "myriadx", input_shape=(1, 1, 8, 8))
    ops = report["ops"]
    assert not ops.passed and "grid_sampler" in ops.message and "warp" in ops.message
    htp = check(_Gaze(), "qualcomm-htp", input_shape=(1, 1, 8, 8), precision="int16")
    assert htp.precision == "int16" and htp["ops"].passed and htp["precision"].passed


def test_check_needs_a_shape_for_a_module():
    with pytest.raises(ConfigError, match="input_shape"):
        check(_Gaze(), "myriadx")
