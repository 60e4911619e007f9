"""calibrate(): the fit recovers a known model, predicts held-out published rows within its band, reads measurement
CSVs (one clear error per bad row), and the CLI round trip writes a calibration the target then uses."""
from __future__ import annotations

import dataclasses

import pytest

from edgedeploy.cli import main
from edgedeploy.errors import CalibrationError, ConfigError
from edgedeploy.targets.calibrate import (
    CalibrateConfig,
    calibrate,
    predict,
    read_measurements,
)
from edgedeploy.targets.calibration import Calibration, Measurement, read_calibration
from edgedeploy.targets.calibration_store import target_calibration
from edgedeploy.targets.target import Target

torch = pytest.importorskip("torch")
LA = "edgedeploy.zoo.latency_archs:"
# small inputs keep profiling fast; together they exercise every coefficient group of the default structure
SMALL = [("digits-cnn", (1, 1, 16, 16)), ("resnet18", (1, 3, 32, 32)), ("mobilenetv2", (1, 3, 32, 32)),
         (LA + "mobileone_s0", (1, 3, 32, 32)), (LA + "yolov8n", (1, 3, 64, 64)), (LA + "squeezenet1_1", (1, 3, 64, 64)),
         (LA + "yolov6n", (1, 3, 64, 64)), (LA + "resnext50_32x4d", (1, 3, 32, 32)),
         (LA + "mobilenet_v3_large", (1, 3, 32, 32)), (LA + "yolov7t", (1, 3, 64, 64)),
         (LA + "deeplabv3_mnv2", (1, 3, 64, 64))]
TRUTH = {"conv": 3.0, "grouped": 9.0, "conv1x1": 2.5, "depthwise": 1.5, "deconv": 20.0, "act": 0.7, "data": 1.2,
         "per_layer_ms": 0.004, "fixed_ms": 0.05}


def _truth_rows() -> tuple[list[Measurement], Calibration]:
    """Latencies a known cpu calibration predicts for the small models: what a perfect fit must recover."""
    cal = dataclasses.replace(calibrate_structure(), coefficients=TRUTH)
    rows = [Measurement(ref, shape, 1.0, "synthetic", "test", "2026-11-30") for ref, shape in SMALL]
    ys = predict(cal, rows, "cpu")
    return [dataclasses.replace(m, latency_ms=y) for m, y in zip(rows, ys)], cal


def calibrate_structure() -> Calibration:
    from edgedeploy.targets.calibrate import _base

    return _base(Target.load("cpu"), CalibrateConfig())


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path / "cache"))       # never the user's calibrations


def test_fit_recovers_a_known_model():
    rows, _ = _truth_rows()
    cal = calibrate("cpu", rows, CalibrateConfig(ridge=0.0))
    assert set(cal.coefficients) == set(TRUTH)
    for name, value in TRUTH.items():
        assert cal.coefficients[name] == pytest.approx(value, rel=1e-4), name
    assert predict(cal, rows, "cpu") == pytest.approx([m.latency_ms for m in rows], rel=1e-6)
    # every row is predicted by the fit without it, except the only models with a transposed conv (yolov6n) and
    # with grouped convs (resnext): without them nothing pins their coefficient
    for r in cal.loo:
        if "yolov6n" not in r.model and "resnext" not in r.model:
            assert abs(r.error) < 1e-3, r.model
        else:
            assert abs(r.error) > 0.01, r.model
    assert cal.fitted and cal.host == Target.load("cpu").extras["cpu_model"] and len(cal.measurements) == len(rows)
    assert cal.compute_groups == ("depthwise",) and cal.throughput is None
    # what a NAS loop does: rows carry their own profiles (labels, not MODEL references) and the fit estimates
    # new candidates through estimate_latency(..., calibration=cal)
    from edgedeploy.targets.calibrate import measurement_profile
    from edgedeploy.targets.latency import estimate_latency

    own = [dataclasses.replace(m, model=f"arch-{i}", profile=measurement_profile(m, "fp32").profile,
                               dilated=measurement_profile(m, "fp32").dilated) for i, m in enumerate(rows)]
    own_cal = calibrate("cpu", own, CalibrateConfig(ridge=0.0))
    assert own_cal.coefficients == pytest.approx(cal.coefficients, rel=1e-6)
    from edgedeploy.zoo.reference import ResNet50

    est = estimate_latency(ResNet50(), "cpu", (1, 3, 32, 32), calibration=own_cal)
    assert est.calibrated and est.ms == pytest.approx(predict(cal, [Measurement("resnet50", (1, 3, 32, 32), 1.0)],
                                                              "cpu")[0], rel=1e-6)
    # rows that publish a throughput too give its ratio to 1000 / latency: lowest, median, highest
    with_fps = [dataclasses.replace(m, fps=k * 1e3 / m.latency_ms) for m, k in zip(rows, (1.5, 1.8, 1.6, 2.0, 1.7))]
    assert calibrate("cpu", with_fps, CalibrateConfig(ridge=0.0)).throughput == pytest.approx((1.5, 1.7, 2.0))


def test_fit_on_a_subset_predicts_held_out_published_rows_within_the_band():
    """Qualcomm AI Hub's classification rows: fit on all but every third row, predict those within the band."""
    tgt = Target.load("qualcomm-htp")
    rows = [m for m in target_calibration(tgt).measurements if m.input_shape[-1] == 224]
    held = rows[2::3]
    cal = calibrate(tgt, [m for m in rows if m not in held])
    low, high = cal.bounds
    assert 0 < cal.band < 1 and len(cal.loo) == len(rows) - len(held)
    for m, pred in zip(held, predict(cal, held, tgt)):
        assert pred * (1 - low) <= m.latency_ms <= pred * (1 + high), m.label


def test_csv_round_trip_and_bad_rows(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("# my OAK runs\nmodel,input_shape,latency_ms,source,conditions,date,label,scope,fps\n"
                    "resnet18,1x3x224x224,19.7,https://x,\"8 shaves, 2 threads\",2024-05-01,R18,,94.8\n"
                    "mobilenetv2,1X3X224X224,0.6,me,,,,layer,\n")
    rows = read_measurements(path)
    assert rows[0].fps == 94.8 and rows[1].fps is None
    assert [m.model for m in rows] == ["resnet18", "mobilenetv2"]
    assert rows[0].input_shape == (1, 3, 224, 224) and rows[0].conditions == "8 shaves, 2 threads"
    assert rows[0].label == "R18" and rows[0].scope == "end-to-end" and rows[1].scope == "layer"
    header = "model,input_shape,latency_ms\n"
    for body, match in (
        ("resnet18,1x3x224,abc\n", r"line 2: latency_ms 'abc' is not a number"),
        ("resnet18,224x224x,5\n", r"line 2: input_shape '224x224x' is not like"),
        ("resnet18,1x3x8x8,5\nresnet18,1x3x8x8,-1\n", r"line 3: latency_ms must be a positive number"),
        (",1x3x8x8,5\n", r"line 2: 'model' is empty"),
        ("resnet18,1x3x8x8,5,extra\n", r"line 2: expected 3 fields"),
        ("resnet18,1x3x8x8\n", r"line 2: expected 3 fields"),
    ):
        path.write_text(header + body)
        with pytest.raises(CalibrationError, match=rf"measurements file {path}, {match}"):
            read_measurements(path)
    path.write_text("model,input_shape,latency_ms,fps\nresnet18,1x3x8x8,5,many\n")
    with pytest.raises(CalibrationError, match=r"line 2: fps 'many' is not a number"):
        read_measurements(path)
    path.write_text("model,shape,latency_ms\nresnet18,1x3x8x8,5\n")
    with pytest.raises(CalibrationError, match="missing column.*input_shape"):
        read_measurements(path)
    path.write_text(header)
    with pytest.raises(CalibrationError, match="has no rows"):
        read_measurements(path)
    path.write_text(header + "resnet18,1x3x8x8,5,\n".replace(",\n", "\n"))
    rows = read_measurements(path)
    with pytest.raises(CalibrationError, match="at least 3 measurements"):
        calibrate("cpu", rows)
    with pytest.raises(ConfigError, match="Measurement rows"):
        calibrate("cpu", [("resnet18", (1, 3, 8, 8), 5.0)] * 3)
    with pytest.raises(CalibrationError, match="scope must be one of"):
        Measurement("resnet18", (1, 3, 8, 8), 5.0, scope="partial")


def _run(capsys, *args):
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_cli_calibrate_round_trip(tmp_path, capsys):
    rows, _ = _truth_rows()
    csv_path = tmp_path / "runs.csv"
    csv_path.write_text("model,input_shape,latency_ms,source,date\n" + "".join(
        f"{m.model},{'x'.join(map(str, m.input_shape))},{m.latency_ms:.6f},my bench,2026-11-30\n" for m in rows))
    out = tmp_path / "cpu_cal.yaml"
    rc, text = _run(capsys, "targets", "calibrate", "cpu", "--from", str(csv_path), "--out", str(out))
    assert rc == 0 and f"calibration written to {out}" in text and "leave-one-out" in text
    cal = read_calibration(out)
    assert [m.model for m in cal.measurements] == [m.model for m in rows] and cal.target == "cpu"
    assert cal.measurements[0].source == "my bench"
    # without --out it lands where the cpu target of this host finds it, and check() then uses it
    rc, text = _run(capsys, "targets", "calibrate", "cpu", "--from", str(csv_path))
    assert rc == 0
    cpu = Target.load("cpu")
    used = target_calibration(cpu)
    assert used is not None and used.coefficients == pytest.approx(cal.coefficients)
    from edgedeploy.targets.check import check
    from edgedeploy.zoo.reference import ResNet18

    verdict = check(ResNet18(), cpu, input_shape=(1, 3, 32, 32))["latency"]
    assert "±" in verdict.message or "%/+" in verdict.message
    rc, text = _run(capsys, "targets", "--calibration")
    assert rc == 0 and "cpu latency calibration" in text and "myriadx latency calibration" in text
    # another CPU model never uses this host's file
    other = dataclasses.replace(cpu, extras={**cpu.extras, "cpu_model": "Some Other CPU"})
    assert target_calibration(other) is None
    bad = tmp_path / "bad.csv"
    bad.write_text("model,input_shape,latency_ms\nresnet18,1x3x32,fast\n")
    rc, text = _run(capsys, "targets", "calibrate", "cpu", "--from", str(bad))
    assert rc == 2 and f"measurements file {bad}, line 2" in text and len(text.strip().splitlines()) == 1


def _refit_matches_shipped(name: str) -> None:
    tgt = Target.load(name)
    shipped = target_calibration(tgt)
    refit = calibrate(tgt, list(shipped.measurements))
    assert refit.coefficients == pytest.approx(shipped.coefficients, rel=1e-3, abs=1e-6)
    assert [r.predicted_ms for r in refit.loo] == pytest.approx([r.predicted_ms for r in shipped.loo], rel=1e-3)
    assert refit.bounds == pytest.approx(shipped.bounds) and refit.throughput == shipped.throughput


def test_shipped_qualcomm_calibration_is_reproducible():
    """Refitting the shipped rows (architectures built here, random weights) gives the shipped numbers."""
    _refit_matches_shipped("qualcomm-htp")


@pytest.mark.slow
def test_shipped_myriadx_calibration_is_reproducible():
    _refit_matches_shipped("myriadx")


def test_fit_recovers_per_group_layer_costs_and_kernel_split_classes():
    # the host-runtime structure: 5x5 kernels in their own group (channel_block), one per-layer cost per group
    from edgedeploy.targets.latency import OP_CLASSES

    groups = {"conv": ("conv", "conv_s2", "conv_stem", "conv1x1", "matmul", "dilated"), "k5": ("conv_k5", "depthwise_k5"),
              "dw": ("depthwise", "grouped")}
    groups["rest"] = tuple(c for c in OP_CLASSES if c not in {c for g in groups.values() for c in g}
                           | {"bn", "relu", "reshape"})
    cfg = CalibrateConfig(groups=groups, compute_groups=("conv", "k5", "dw"), channel_block=16, per_layer_groups=True,
                          ridge=0.0)
    truth = {"conv": 3.0, "k5": 6.0, "dw": 1.5, "rest": 1.2, "per_layer_ms.conv": 0.004, "per_layer_ms.k5": 0.02,
             "per_layer_ms.dw": 0.001, "per_layer_ms.rest": 0.002, "fixed_ms": 0.05}
    from edgedeploy.targets.calibrate import _base

    structure = _base(Target.load("cpu"), cfg)
    assert structure.channel_block == 16 and structure.per_layer_groups
    rows = [Measurement(ref, shape, 1.0, "synthetic", "test", "2026-11-30") for ref, shape in SMALL]
    ys = predict(dataclasses.replace(structure, coefficients=truth), rows, "cpu")
    rows = [dataclasses.replace(m, latency_ms=y) for m, y in zip(rows, ys)]
    cal = calibrate("cpu", rows, cfg)
    assert set(cal.coefficients) == set(truth)
    for name, value in truth.items():
        assert cal.coefficients[name] == pytest.approx(value, rel=1e-3), name
    # without the channel block nothing is a k5 class: the same rows then leave the k5 group unexercised
    plain = dataclasses.replace(structure, channel_block=None, coefficients=truth)
    assert predict(plain, rows, "cpu") != pytest.approx(ys, rel=1e-3)
    with pytest.raises(ConfigError, match="channel_block must be 0"):
        CalibrateConfig(channel_block=1)
