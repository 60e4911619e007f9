"""NAS on the real digits: a multi-objective search finds a true Pareto front, its hypervolume only grows, the chosen
architecture is retrained, exported (ONNX parity) and profiled; constraints prune before any training; a study
resumes; the zero-cost proxy and the latency predictor give the numbers they claim."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgedeploy.compress.nas import config_from_dict, load_chosen, nas
from edgedeploy.compress.nas import train as nas_train
from edgedeploy.compress.nas.predictor import (
    PredictorConfig,
    agreement,
    calibrate_predictor,
)
from edgedeploy.compress.nas.result import TrialRow, hypervolume
from edgedeploy.errors import ConfigError

SPACE = {"resolution": [8], "stem": ["conv", "s2d"], "stem_width": [8],
         "stages": [{"blocks": ["conv", "ghost", "repvgg", "partial"], "depth": [1, 2], "width": [8, 16],
                     "kernel": [3], "expansion": [1, 2]}]}


def tiny(**options):
    """A small space on 8x8 digits: each trial trains for one epoch in about a second."""
    return config_from_dict({"space": SPACE, "trials": 8, "population": 4, "epochs": 1, "final_epochs": 4,
                             "latency_repeats": 20, "heartbeat_s": 2, **options})


def dominates(a, b):
    return all(x <= y for x, y in zip(a, b)) and a != b


def test_search_finds_a_pareto_front_and_builds_the_chosen_architecture(tmp_path):
    out = tmp_path / "nas"
    result = nas(tiny(), out=out)
    c = result.counts
    assert c["complete"] + c["pruned"] == 8 and c["failed"] == 0 and c["retried"] == 0
    done = [t for t in result.trials if t.state == "COMPLETE"]
    for t in done:
        assert 0 < t.values["accuracy"] <= 100 and 0 < t.values["latency"] < 5
        assert t.values["latency"] == t.metrics["latency"] and t.metrics["macs"] > 0
    loss = {t.number: (-t.values["accuracy"], t.values["latency"]) for t in done}
    front = set(result.pareto)
    assert front and all(not dominates(loss[m], loss[n]) for n in front for m in loss)
    assert all(any(dominates(loss[f], loss[n]) or loss[f] == loss[n] for f in front) for n in loss if n not in front)
    hv = [h["hypervolume"] for h in result.hypervolume]
    assert hv == sorted(hv) and 0 < hv[-1] <= 1.1 ** 2
    lo, hi = result.hv_bounds["best"], result.hv_bounds["worst"]
    assert lo == [-100.0, 0.0] and hv[-1] == pytest.approx(hypervolume(result.trials, result.objectives, lo, hi))
    # the chosen Pareto member, retrained for 4 epochs, exported and profiled
    assert result.chosen in front
    final = result.final
    assert final["trial"] == result.chosen and final["accuracy"] >= 90.0
    model = load_chosen(out / "best")
    from edgedeploy.blocks.reparam import deploy_form
    from edgedeploy.metrics.profile import profile
    from edgedeploy.runtime import load
    from edgedeploy.zoo.digits import load_digits_data

    data = load_digits_data(size=8)
    session = load(out / "best" / "model.onnx", runtime="onnxruntime", threads=1)
    logits = np.concatenate([session.run(x[None].numpy())[0] for x in data.x_test])
    with torch.no_grad():
        ref = model(data.x_test).numpy()
    assert np.abs(logits - ref).max() < 1e-4
    assert 100 * (logits.argmax(1) == data.y_test.numpy()).mean() == pytest.approx(final["accuracy"])
    shape = tuple(session.inputs[0].shape)
    assert final["macs"] == profile(deploy_form(model)[0], shape).macs
    # a run folder the report renders, with the Pareto front section
    from edgedeploy.report import nas_section  # noqa: F401
    from edgedeploy.report.build import render_report

    html = render_report(out).read_text()
    assert "Pareto front" in html and "fig-nas-pareto" in html and "fig-nas-hv" in html
    assert all(result.trial(n).key in html for n in front)


def test_constraints_prune_before_training_and_a_study_resumes(tmp_path, monkeypatch):
    trained = []
    real_train = nas_train.train
    monkeypatch.setattr("edgedeploy.compress.nas.objectives.train",
                        lambda model, *a, **k: trained.append(sum(p.numel() for p in model.parameters()))
                        or real_train(model, *a, **k))
    cfg = tiny(sampler="tpe", trials=6, final_epochs=0, constraints={"params": 1500})
    first = nas(cfg, out=tmp_path / "nas")
    pruned = [t for t in first.trials if t.state == "PRUNED"]
    done = [t for t in first.trials if t.state == "COMPLETE"]
    assert pruned and done and len(pruned) + len(done) == 6
    assert all("params" in t.pruned and t.metrics["params"] > 1500 and "accuracy" not in t.metrics for t in pruned)
    assert all(t.metrics["params"] <= 1500 for t in done)
    assert len(trained) == len([t for t in done if t.duplicate_of is None])       # only feasible ones trained
    assert all(p <= 1500 for p in trained)
    # resumed with a larger budget: the first trials are kept as they were, two more run
    again = nas(config_from_dict({**cfg.to_dict(), "trials": 8}), out=tmp_path / "nas")
    assert again.counts["complete"] + again.counts["pruned"] == 8
    assert [(t.number, t.values) for t in again.trials[:6]] == [(t.number, t.values) for t in first.trials]
    with pytest.raises(ConfigError, match="different config .*epochs"):
        nas(config_from_dict({**cfg.to_dict(), "epochs": 3}), out=tmp_path / "nas")


def test_unmeetable_constraints_fail_in_one_line_before_training(tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained although no architecture can meet the constraints")

    monkeypatch.setattr("edgedeploy.compress.nas.objectives.train", no_training)
    # the smallest candidate: s2d stem 1x1 4->8 (48 params) + GhostConv 3x3 s2 8->8 (primary 8->4: 296, cheap 5x5
    # depthwise on 4: 108) + fc 8->10 (90) = 542
    with pytest.raises(ConfigError, match=r"no architecture .* \(closest: r8 s2d8 relu \| ghost d1 w8 k3 e1: "
                                          r"params 542 > 100\)") as info:
        nas(tiny(constraints={"params": 100}), out=tmp_path / "a")
    assert "\n" not in str(info.value)
    # every op supported by the MyriadX compiler: HardSwish is not (its ONNX HardSigmoid is rejected)
    space = {**SPACE, "act": ["hardswish"]}
    with pytest.raises(ConfigError, match="ops on myriadx: .*(Hardswish|hardswish)"):
        nas(config_from_dict({"space": space, "constraints": {"target": "myriadx", "ops": True}}), out=tmp_path / "b")
    with pytest.raises(ConfigError, match="predicted latency .* ms > 1e-06 ms on cpu"):
        nas(tiny(constraints={"latency_ms": 1e-6}), out=tmp_path / "c")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()    # nothing written either


def test_unreachable_storage_fails_in_one_line_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr("edgedeploy.compress.nas.objectives.train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ConfigError, match=r"cannot reach the study storage postgresql://nas:\*\*\*@127\.0\.0\.1:1/"
                                          r"db: .*refused") as info:
        nas(tiny(storage="postgresql://nas:secret@127.0.0.1:1/db"), out=tmp_path / "x")
    assert "secret" not in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="not a database URL"):
        nas(tiny(storage="redis://127.0.0.1:1"), out=tmp_path / "x")


def test_zero_cost_proxy_objective_trains_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("edgedeploy.compress.nas.objectives.train", lambda *a, **k: pytest.fail("trained"))
    result = nas(tiny(objectives=["proxy", "macs"], sampler="random", final_epochs=0), out=tmp_path / "p")
    done = [t for t in result.trials if t.state == "COMPLETE"]
    assert len(done) == 8 and all(np.isfinite(t.values["proxy"]) and t.values["macs"] > 0 for t in done)


def test_naswot_is_the_log_determinant_of_the_hamming_kernel():
    # one ReLU over 4 units; inputs whose activation codes are 1100, 1010 and 0111
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.ReLU())
    x = torch.tensor([[1.0, 1, -1, -1], [1, -1, 1, -1], [-1, 1, 1, 1]])
    # K[i][j] = units where codes agree (4 - Hamming distance): d(0,1) = 2, d(0,2) = 3, d(1,2) = 3
    k = torch.tensor([[4.0, 2, 1], [2, 4, 1], [1, 1, 4]], dtype=torch.float64)
    assert nas_train.naswot(model, x) == pytest.approx(float(torch.logdet(k)))


def test_hypervolume_is_exact_on_a_hand_count():
    def row(n, acc, lat):
        return TrialRow(n, "COMPLETE", None, None, {"accuracy": acc, "latency": lat}, {})

    rows = [row(0, 90.0, 1.0), row(1, 80.0, 0.5), row(2, 60.0, 2.0)]
    # losses scaled by ideal (-100, 0) and worst (-60, 2): (0.25, 0.5), (0.5, 0.25), (1, 1); reference 1.1
    # union of [0.25, 1.1] x [0.5, 1.1] and [0.5, 1.1] x [0.25, 1.1] = 0.51 + 0.51 - 0.36 = 0.66
    assert hypervolume(rows, ("accuracy", "latency"), [-100.0, 0.0], [-60.0, 2.0]) == pytest.approx(0.66)


def test_latency_predictor_is_fitted_on_measurements_and_judged_on_held_out_ones(tmp_path):
    assert agreement([1.0, 2.0, 3.0, 4.0], [1.05, 2.5, 2.9, 4.0]) == pytest.approx((0.75, 1.0, 100 * (
        0.05 + 0.25 + 0.1 / 3 + 0) / 4))
    space = config_from_dict({"space": SPACE}).space
    report = calibrate_predictor(space, PredictorConfig(archs=8, held_out=6, repeats=30), out=tmp_path / "cal")
    measured = [r["measured_ms"] for r in report.rows]
    predicted = [r["predicted_ms"] for r in report.rows]
    roofline = [r["roofline_ms"] for r in report.rows]
    assert report.calibrated and report.fit_rows == 8 and len(report.rows) == 6
    # the structure is the candidate with the best leave-one-out on the fit rows (held-out rows never choose)
    assert set(report.loo_within_10pct) == {"plain", "blocked"}
    assert report.loo_within_10pct[report.structure] == max(report.loo_within_10pct.values())
    assert all(0 < m < 5 for m in measured) and all(p > 0 for p in predicted)
    assert (report.within_10pct, report.kendall_tau, report.mean_abs_error_pct) == pytest.approx(
        agreement(measured, predicted))
    # the fitted cpu model beats the plain roofline (an upper bound of the CPU's peak: far too optimistic here)
    assert report.mean_abs_error_pct < report.roofline["mean_abs_error_pct"]
    assert all(q < m for q, m in zip(roofline, measured))
    # the calibration is a targets.calibrate one: it reads back and predicts the same with estimate_latency
    from edgedeploy.blocks.reparam import deploy_form
    from edgedeploy.compress.nas import Arch, build_model
    from edgedeploy.targets.calibration import read_calibration
    from edgedeploy.targets.latency import estimate_latency

    cal = read_calibration(report.files["calibration"])
    assert cal.target == "cpu" and len(cal.measurements) == 8 and len(cal.loo) == 8
    onnx = [line.split(",")[0] for line in (tmp_path / "cal" / "measurements.csv").read_text().splitlines()[1:]]
    assert len(onnx) == 14 and all(Path(p).is_file() for p in onnx)
    first = report.rows[0]
    arch = next(a for a in space_archs(space) if a.key == first["arch"])
    model = deploy_form(build_model(arch, seed=0).eval())[0]
    est = estimate_latency(model, "cpu", arch.input_shape, calibration=cal)
    assert est.calibrated and est.ms == pytest.approx(first["predicted_ms"], rel=1e-3)   # YAML keeps 6 decimals
    # the search predicts with it (objective latency_pred on target cpu)
    result = nas(tiny(objectives=["proxy", "latency_pred"], sampler="random", trials=3, final_epochs=0,
                      calibration=report.files["calibration"]), out=tmp_path / "search")
    for t in (t for t in result.trials if t.state == "COMPLETE"):
        a = Arch.from_dict(t.arch)
        model = deploy_form(build_model(a, seed=0).eval())[0]
        assert t.values["latency_pred"] == pytest.approx(estimate_latency(model, "cpu", a.input_shape,
                                                                          calibration=cal).ms)
    with pytest.raises(ConfigError, match="is for target 'cpu', but the search predicts latency on 'myriadx'"):
        tiny(target="myriadx", calibration=report.files["calibration"])


def space_archs(space):
    """Every architecture of a small space."""
    rng = np.random.default_rng(0)
    return list({a.key: a for a in (space.sample(rng) for _ in range(3000))}.values())


def test_single_objective_search_prunes_below_median_trials_after_an_epoch(tmp_path):
    result = nas(tiny(objectives=["accuracy"], epochs=2, trials=10, final_epochs=0, sampler="random"),
                 out=tmp_path / "s")
    pruned = [t for t in result.trials if t.state == "PRUNED"]
    done = [t for t in result.trials if t.state == "COMPLETE"]
    assert pruned and len(pruned) + len(done) == 10
    assert all("below the median of earlier trials at epoch 1" in t.pruned for t in pruned)
    assert all("accuracy" not in t.metrics and t.metrics["macs"] > 0 for t in pruned)   # stopped mid-training
    assert all(n.number >= 4 for n in pruned)                                      # after the 4 startup trials
    assert result.pareto == [max(done, key=lambda t: t.values["accuracy"]).number]


def test_zero_cost_first_pass_seeds_the_study_with_the_best_proxy_scores(tmp_path):
    result = nas(tiny(trials=5, proxy_first=12, final_epochs=0), out=tmp_path / "z")
    import optuna

    study = optuna.load_study(study_name="nas", storage=f"sqlite:///{tmp_path / 'z' / 'study.db'}")
    seeded = [t for t in study.trials if "proxy_first" in t.user_attrs]
    scores = [t.user_attrs["proxy_first"] for t in seeded]
    assert [t.number for t in seeded] == [0, 1, 2, 3] and scores == sorted(scores, reverse=True)
    assert all(t.state.name == "COMPLETE" for t in seeded) and result.counts["complete"] == 5
