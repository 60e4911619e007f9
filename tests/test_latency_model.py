"""The calibrated latency model: op classes, the estimate by hand, calibration files, and check()'s band verdicts."""
from __future__ import annotations

import dataclasses
import math
import re

import pytest
import yaml

from edgedeploy.errors import CalibrationError, ConfigError, TargetError
from edgedeploy.metrics.types import EnergyEstimate, LayerStats, Profile
from edgedeploy.targets.calibration import Calibration, Measurement, read_calibration
from edgedeploy.targets.calibration_store import target_calibration
from edgedeploy.targets.check import check
from edgedeploy.targets.latency import (
    OP_CLASSES,
    channel_padding,
    estimate_latency,
    op_class,
    roofline,
)
from edgedeploy.targets.target import PROFILES_DIR, Target, available_targets


def _row(name, op, macs=0, inp=(1, 16, 8, 8), out=(1, 16, 8, 8), traffic=0, weights=0):
    return LayerStats(name=name, op=op, input_shapes=(inp,), output_shapes=(out,), params=0, macs=macs, elem_ops=0,
                      weight_bytes=weights, read_bytes=traffic, write_bytes=0, ops=(op,))


def _profile(layers):
    return Profile(model="hand", input_shapes=[(1, 16, 8, 8)], precision="fp16", layers=layers, params=0,
                   macs=sum(r.macs for r in layers), elem_ops=0, model_size_bytes={"fp32": 0, "fp16": 0, "int8": 0},
                   peak_activation_bytes=0, traffic_bytes=sum(r.traffic_bytes for r in layers),
                   energy=EnergyEstimate(0.0, 0.0, 0.0, "none"))


TOY = {"name": "toy", "description": "toy device", "precisions": ["fp16"], "peak_ops_per_s": {"fp16": 1.0e12},
       "memory_bandwidth_gbps": 10.0, "bandwidth_share": 0.5, "memory_bytes": 10**9,
       "latency_budget_ms": {"min": 1, "max": 30}, "min_fps": None, "supported_ops": "all"}


def _groups(**groups):
    """The given coefficient groups plus a 'rest' group holding every other op class (a file must cover all)."""
    used = {c for classes in groups.values() for c in classes} | {"bn", "relu", "reshape"}
    return {**groups, "rest": tuple(c for c in OP_CLASSES if c not in used)}


def _calibration(**kw):
    base = {"target": "toy", "precision": "fp16", "groups": _groups(conv=("conv", "conv_s2"), shave=("act", "eltwise")),
            "fused": frozenset({"bn", "relu"}), "band": 0.2, "link_mb_s": 100.0, "io_bytes": (1.0, 2.0), "shaves": 8,
            "coefficients": {"conv": 3.0, "shave": 2.0, "per_layer_ms": 0.5, "transfer": 1.0, "fixed_ms": 4.0},
            "shave_groups": ("shave",)}
    base.update(kw)
    return Calibration(**base)


def test_op_classes_from_macs_shapes_and_names():
    c = 16 * 64                                          # output elements of a 16x8x8 map
    assert op_class(_row("c3", "Conv2d", macs=c * 16 * 9)) == "conv"
    assert op_class(_row("c1", "Conv2d", macs=c * 16)) == "conv1x1"
    assert op_class(_row("dw", "Conv2d", macs=c * 9)) == "depthwise"
    assert op_class(_row("s2", "Conv2d", macs=16 * 16 * 16 * 9, out=(1, 16, 4, 4))) == "conv_s2"
    assert op_class(_row("stem", "Conv2d", macs=c * 3 * 9, inp=(1, 3, 8, 8))) == "conv_stem"
    assert op_class(_row("onnx", "Conv", macs=c * 16 * 9)) == "conv"             # ONNX op types too
    assert op_class(_row("up", "ConvTranspose2d", macs=10)) == "deconv"
    for op, cls in (("Linear", "matmul"), ("Gemm", "matmul"), ("BatchNorm2d", "bn"), ("BatchNormalization", "bn"),
                    ("ReLU", "relu"), ("Clip", "relu"), ("LeakyReLU", "leaky"), ("SiLU", "act"), ("sigmoid", "act"),
                    ("add", "eltwise"), ("Mul", "eltwise"), ("cat", "concat"), ("Concat", "concat"),
                    ("upsample_nearest2d", "resize"), ("DepthToSpace", "resize"), ("MaxPool2d", "pool"),
                    ("GlobalAveragePool", "pool"), ("permute", "permute"), ("view", "reshape"), ("softmax", "softmax"),
                    ("frobnicate", "other")):
        assert op_class(_row("x", op)) == cls, op


def test_estimate_by_hand_and_shaves(tmp_path):
    c = 16 * 64
    conv = _row("conv", "Conv2d", macs=c * 16 * 9)          # 147456 MACs -> 2.95e5 ops / 1e12 = 2.949e-4 ms
    bn = _row("bn", "BatchNorm2d", traffic=10**6)          # folded: free
    act = _row("act", "SiLU", traffic=10**6)                # memory-bound: 1e6 B / 5e9 B/s = 0.2 ms
    prof = _profile([conv, bn, act])
    tgt = Target(**{**TOY, "precisions": ("fp16",), "latency_budget_ms": (1.0, 30.0), "supported_ops": None})
    cal = _calibration()
    est = estimate_latency(prof, tgt, calibration=cal)
    roof = roofline(prof, tgt, "fp16")
    compute = 3.0 * roof[0].latency_ms + 2.0 * 0.2
    io = (16 * 64) * 1.0 + (16 * 64) * 2.0                 # input bytes + last layer's output bytes
    transfer = io / (100.0 * 1e3)
    assert est.calibrated and est.compute_ms == pytest.approx(compute)
    assert est.transfer_ms == pytest.approx(transfer)
    assert est.overhead_ms == pytest.approx(2 * 0.5 + 4.0)     # two executed layers + one inference
    assert est.ms == pytest.approx(compute + transfer + 5.0)
    assert (est.low_ms, est.high_ms) == pytest.approx((0.8 * est.ms, 1.2 * est.ms))
    assert est.text == f"{est.ms:.3g} ms ± 20%"
    assert [r.factor for r in est.layers] == [3.0, 0.0, 2.0] and est.layers[1].latency_ms == 0
    assert sum(r.latency_ms for r in est.layers) == pytest.approx(compute + 1.0)
    # a blob for 16 SHAVEs halves the SHAVE-run classes of a calibration made at 8
    est16 = estimate_latency(prof, tgt, calibration=cal, shaves=16)
    assert est.ms - est16.ms == pytest.approx(2.0 * 0.2 / 2)
    lopsided = estimate_latency(prof, tgt, calibration=_calibration(band=0.5, band_low=0.1, band_high=0.5))
    assert lopsided.text.endswith("-10%/+50%") and lopsided.low_ms == pytest.approx(0.9 * lopsided.ms)
    data = est.to_dict()
    assert data["ms"] == pytest.approx(est.ms) and data["layers"][0]["op_class"] == "conv"
    with pytest.raises(ConfigError, match="shaves"):
        estimate_latency(prof, tgt, calibration=cal, shaves=0)
    with pytest.raises(ConfigError, match="does not belong"):
        estimate_latency(prof, "myriadx", calibration=cal)


def test_uncalibrated_target_is_the_plain_roofline():
    prof = _profile([_row("conv", "Conv2d", macs=10**9, traffic=10**6)])
    tgt = Target(**{**TOY, "precisions": ("fp16",), "latency_budget_ms": (1.0, 30.0), "supported_ops": None})
    est = estimate_latency(prof, tgt)
    assert not est.calibrated and est.band == 0 and est.ms == pytest.approx(2.0)
    assert est.low_ms == est.high_ms == est.ms and "uncalibrated" in est.text


def _write_target(tmp_path, cal: Calibration | None, **fields):
    data = {**TOY, **fields}
    if cal is not None:
        cal.to_yaml(tmp_path / "toy_calibration.yaml")
        data["calibration"] = "toy_calibration.yaml"
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_check_decides_with_the_band(tmp_path):
    # one executed conv: 10 ms of roofline x factor 1 + fixed 0 -> 10 ms; band +-20% -> 8..12 ms
    prof = _profile([_row("conv", "Conv2d", macs=5 * 10**9)])
    cal = _calibration(groups=_groups(conv=("conv",)), coefficients={"conv": 1.0}, link_mb_s=None, shaves=None,
                       shave_groups=())
    target = Target.load(_write_target(tmp_path, cal))
    assert target_calibration(target) is not None
    cases = {13.0: ("PASS", True), 11.0: ("UNKNOWN", None), 9.0: ("UNKNOWN", None), 7.0: ("FAIL", False)}
    for budget, (status, passed) in cases.items():
        tgt = dataclasses.replace(target, latency_budget_ms=(1.0, budget))
        verdict = check(prof, tgt)["latency"]
        assert verdict.status == status and verdict.passed is passed, budget
        assert "10 ms ± 20% (8-12 ms)" in verdict.message
        if status == "UNKNOWN":
            assert verdict.unknown and "too close to call" in verdict.message
    report = check(prof, dataclasses.replace(target, latency_budget_ms=(1.0, 11.0)))
    assert report.status == "UNKNOWN" and report.latency_ms == pytest.approx(10.0)
    assert report.to_dict()["latency"]["band"] == 0.2
    fps = {f: check(prof, target, fps=f)["fps"].status for f in (80.0, 100.0, 130.0)}   # 83.3..125 FPS
    assert fps == {80.0: "PASS", 100.0: "UNKNOWN", 130.0: "FAIL"}
    assert "calibrated estimate 10 ms ± 20%" in str(report)
    # a calibration whose measurements publish throughput (several inferences in flight): FPS = k x 1000 / ms
    piped = Target.load(_write_target(tmp_path, dataclasses.replace(cal, throughput=(1.5, 1.75, 2.0))))
    est = check(prof, piped).estimate
    assert est.pipelined and (est.fps, est.fps_low, est.fps_high) == pytest.approx((175.0, 125.0, 250.0))
    assert check(prof, piped, fps=130.0)["fps"].status == "UNKNOWN"
    assert check(prof, piped, fps=120.0)["fps"].status == "PASS"


def test_calibration_file_errors_name_file_and_field(tmp_path):
    good = _calibration(measurements=(Measurement("resnet18", (1, 3, 224, 224), 19.7, "https://x", "c", "2024"),))
    path = tmp_path / "c.yaml"
    good.to_yaml(path)
    back = read_calibration(path)
    assert back.coefficients == good.coefficients and back.measurements[0].latency_ms == 19.7
    assert back.groups == good.groups and back.shave_groups == ("shave",)
    text = path.read_text()
    for broken, match in (
        (text.replace("conv: 3.0", "conv: -3.0"), r"field 'coefficients.conv' must be a number"),
        (text.replace("- act", "- warp"), r"field 'model.groups.shave' must be a list of op classes"),
        (text.replace("source: https://x", "source: ''"), r"field 'measurements\[0\].source' is empty"),
        (text.replace("input_shape: 1x3x224x224", "input_shape: 1x3xbig"), r"measurements\[0\].input_shape"),
        (text.replace("per_layer_ms:", "per_layr_ms:"), r"field 'coefficients.per_layr_ms' is neither"),
        (text.replace("precision: fp16", "precision: fp12"), r"field 'precision' must be one of"),
        (text.replace("    - eltwise\n", ""), r"field 'model.groups' leaves op class\(es\) eltwise in no group"),
        (text + "\n  - [", r"not valid YAML"),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(broken)
        with pytest.raises(CalibrationError, match=rf"calibration file {re.escape(str(bad))}.*{match}"):
            read_calibration(bad)
    # a target naming a broken or foreign calibration fails to load, naming its own file and field
    (tmp_path / "toy_calibration.yaml").write_text(text.replace("conv: 3.0", "conv: x"))
    data = {**TOY, "calibration": "toy_calibration.yaml"}
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(TargetError, match=r"toy.yaml: field 'calibration'.*coefficients.conv"):
        Target.load(tmp_path / "toy.yaml")
    (tmp_path / "toy_calibration.yaml").write_text(text.replace("target: toy", "target: other"))
    assert target_calibration(Target.load(tmp_path / "toy.yaml")).target == "other"    # a copy keeps its model
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump({**data, "calibration": "missing.yaml"}))
    with pytest.raises(TargetError, match="neither beside the target nor shipped"):
        Target.load(tmp_path / "toy.yaml")


def test_shipped_calibrations_cite_every_row():
    assert not [n for n in available_targets() if n.endswith("_calibration")]
    for name, rows in (("myriadx", 22), ("qualcomm-htp", 10)):
        cal = target_calibration(Target.load(name))
        assert cal is not None and cal.target == name and len(cal.measurements) == rows == len(cal.loo)
        assert all(m.source and m.date and m.conditions for m in cal.measurements)
        assert cal.band == max(cal.bounds) and 0 < cal.band < 1
        # the band holds every end-to-end row's leave-one-out prediction
        low, high = cal.bounds
        for m, r in zip(cal.measurements, cal.loo):
            if m.scope == "end-to-end":
                assert (1 - low) * r.predicted_ms <= r.measured_ms * (1 + 1e-9)
                assert r.measured_ms <= (1 + high) * r.predicted_ms * (1 + 1e-9)
    myx = target_calibration(Target.load("myriadx"))
    assert any("docs.luxonis.com" in m.source for m in myx.measurements)
    assert sum(m.scope == "layer" for m in myx.measurements) == 6          # the tutorial's layer timings
    assert "8 SHAVEs" in myx.conditions and myx.shaves == 8
    assert myx.throughput == pytest.approx((1.4972, 1.7675, 1.9455))     # Luxonis' FPS x latency, 2 threads
    assert (PROFILES_DIR / "myriadx_calibration.yaml").is_file()


def test_estimate_matches_the_fit_on_a_published_row():
    """estimate_latency and the fit's design give the same number for ResNet-18 at 224 on MyriadX."""
    from edgedeploy.targets.calibrate import predict
    from edgedeploy.zoo.reference import ResNet18

    tgt = Target.load("myriadx")
    cal = target_calibration(tgt)
    row = next(m for m in cal.measurements if m.label == "ResNet-18")
    est = estimate_latency(ResNet18(), tgt, (1, 3, 224, 224))
    assert est.ms == pytest.approx(predict(cal, [row], tgt)[0], rel=1e-9)
    assert est.calibrated and est.low_ms < row.latency_ms < est.high_ms
    assert not math.isclose(est.ms, sum(r.latency_ms for r in roofline(_profile224(ResNet18()), tgt, "fp16")))


def _profile224(model):
    from edgedeploy.metrics.profile import profile

    return profile(model, (1, 3, 224, 224), precision="fp16")


def test_channel_blocks_kernel_split_and_per_group_layer_costs_by_hand(tmp_path):
    # a host CPU's SIMD channel block (16 with AVX-512): 5x5 kernels are their own classes, work counts whole blocks
    k5 = _row("k5", "Conv2d", macs=16 * 64 * 16 * 25)
    assert op_class(k5) == "conv" and op_class(k5, block=16) == "conv_k5"
    assert op_class(_row("k5s2", "Conv2d", macs=16 * 16 * 16 * 25, out=(1, 16, 4, 4)), block=16) == "conv_k5"
    dw5 = _row("dw5", "Conv2d", macs=32 * 64 * 25, inp=(1, 32, 8, 8), out=(1, 32, 8, 8))
    assert op_class(dw5) == "depthwise" and op_class(dw5, block=16) == "depthwise_k5"
    assert op_class(_row("c3", "Conv2d", macs=16 * 64 * 16 * 9), block=16) == "conv"
    ragged = _row("r", "Conv2d", macs=12 * 64 * 18 * 9, inp=(1, 18, 8, 8), out=(1, 12, 8, 8))
    assert channel_padding(ragged, "conv", 16) == pytest.approx((16 / 12) * (32 / 18))
    assert channel_padding(_row("few", "Conv2d", inp=(1, 8, 8, 8), out=(1, 24, 8, 8)), "conv", 16) == pytest.approx(
        32 / 24)                                          # fewer input channels than a block: read unblocked
    assert channel_padding(_row("dw", "Conv2d", inp=(1, 24, 8, 8), out=(1, 24, 8, 8)), "depthwise", 16) == \
        pytest.approx(32 / 24)
    assert channel_padding(_row("add", "add"), "eltwise", 16) == 1.0
    # the estimate: factor x padded compute per class, plus each group's own per-layer cost
    conv = _row("conv", "Conv2d", macs=24 * 64 * 16 * 9, out=(1, 24, 8, 8))
    prof = _profile([conv, k5, _row("bn", "BatchNorm2d", traffic=10**6)])
    tgt = Target(**{**TOY, "precisions": ("fp16",), "latency_budget_ms": (1.0, 30.0), "supported_ops": None})
    groups = _groups(conv=("conv", "conv_s2"), big=("conv_k5",))
    cal = _calibration(groups=groups, link_mb_s=None, channel_block=16, per_layer_groups=True, shaves=None,
                       shave_groups=(),
                       compute_groups=("conv", "big"),
                       coefficients={"conv": 3.0, "big": 5.0, "rest": 1.0, "per_layer_ms.conv": 0.5,
                                     "per_layer_ms.big": 0.25, "fixed_ms": 4.0})
    est = estimate_latency(prof, tgt, calibration=cal)
    roof = roofline(prof, tgt, "fp16")
    assert est.compute_ms == pytest.approx(3.0 * roof[0].compute_ms * 32 / 24 + 5.0 * roof[1].compute_ms)
    assert est.overhead_ms == pytest.approx(0.5 + 0.25 + 4.0)
    assert [r.op_class for r in est.layers] == ["conv", "conv_k5", "bn"]
    # the file keeps the structure and the per-group coefficients
    again = read_calibration(_write(tmp_path / "blocked.yaml", cal))
    assert (again.channel_block, again.per_layer_groups) == (16, True)
    assert estimate_latency(prof, tgt, calibration=again).ms == pytest.approx(est.ms)
    # a calibration whose groups predate the split classes loads and times them like their parents
    old = {**cal.to_dict(), "model": {**cal.to_dict()["model"], "compute_groups": ["conv"],
                                      "groups": {"conv": ["conv", "conv_s2"],
                                                 "rest": [c for c in groups["rest"]
                                                          if c not in ("conv_k5", "depthwise_k5")]}}}
    old["coefficients"] = {k: v for k, v in old["coefficients"].items() if "big" not in k}
    old_cal = read_calibration(_write_dict(tmp_path / "old.yaml", old))
    assert old_cal.class_factors()["conv_k5"] == 3.0 and old_cal.class_layer_ms()["conv_k5"] == 0.5
    assert "conv_k5" in old_cal.compute_classes
    bad = {**old, "model": {**old["model"], "channel_block": 1}}
    with pytest.raises(CalibrationError, match="'model.channel_block' must be an int >= 2"):
        read_calibration(_write_dict(tmp_path / "bad.yaml", bad))


def _write(path, cal):
    cal.to_yaml(path)
    return path


def _write_dict(path, data):
    path.write_text(yaml.safe_dump(data))
    return path
