"""The case study as a recipe: the shipped ``headbody`` recipe validates, ``data: headbody`` resolves to seeded
scene splits, the registered train/evaluate steps work on a torch detector and on a U8-input OpenVINO IR, and the
report's detection section renders from a run folder (table, recall plot, overlays, choices impact)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgedeploy.data import batches, resolve
from edgedeploy.errors import ConfigError
from edgedeploy.run.recipe import load_recipe, shipped_recipes
from edgedeploy.zoo import task
from edgedeploy.zoo.headbody import INPUT_SHAPE, SceneSplits, build, evaluate, scene_splits

TINY = {"widths": (8, 16, 16, 32)}


@pytest.fixture(scope="module")
def splits() -> SceneSplits:
    return scene_splits(INPUT_SHAPE, n_train=6, n_test=3)


def test_shipped_recipe_validates() -> None:
    assert "headbody" in shipped_recipes()
    r = load_recipe("headbody")
    assert r.model == "headbody-hw" and r.input == INPUT_SHAPE and r.data == "headbody" and r.threads == 1
    kinds = [s.kind for s in r.steps]
    assert kinds[0] == "train" and kinds[-1] == "report" and {"profile", "export", "bench", "evaluate"} <= set(kinds)
    targets = [s.options.get("target", r.target) for s in r.steps if s.kind == "check"]
    assert targets == ["myriadx", "qualcomm-htp"]
    export = next(s for s in r.steps if s.kind == "export").config
    assert set(export.to) == {"onnx", "openvino", "blob", "depthai", "qnn"} and export.openvino.input_type == "u8"


def test_dataset_resolves_to_seeded_disjoint_splits(splits) -> None:
    from edgedeploy import data as data_mod

    assert "headbody" in data_mod.datasets() and data_mod._DATASETS["headbody"] is scene_splits   # registered
    with pytest.raises(ConfigError, match="input shape"):
        resolve("headbody", None, "train")
    again = scene_splits(INPUT_SHAPE, n_train=6, n_test=3)
    assert again is splits                                                           # kept for the next step
    assert splits.train_set.meta["config"]["faces"] == "train" and splits.test_set.meta["config"]["faces"] == "test"
    counts = splits.to_dict()
    assert counts["train"]["images"] == 6 and counts["test"]["images"] == 3 and counts["test"]["heads"] > 0
    # the splits protocol every other stage reads: calibration frames (N, 1, H, W) in [0, 1]
    cal = batches(splits, "calibration")
    assert cal[0].inputs[0].shape == (6, 1, 352, 1280) and 0 <= cal[0].inputs[0].min() < cal[0].inputs[0].max() <= 1
    assert batches(splits, "evaluation")[0].inputs[0].shape == (3, 1, 352, 1280)
    with pytest.raises(ConfigError, match="grayscale"):
        scene_splits((1, 3, 352, 1280))


def test_registered_train_and_evaluate_steps(splits, tmp_path) -> None:
    trainer, evaluator = task("headbody-hw", "trainer"), task("headbody-hw", "evaluator")
    assert trainer is not None and evaluator is not None and task("headbody-baseline", "trainer") is trainer
    torch.manual_seed(0)
    model = build("hw-aware", **TINY)
    history = trainer(model, splits, epochs=8, quick=True)          # ceil(8 * 6 / 16) = 3 steps, // 4 -> 1
    assert len(history) == 1 and history[0]["loss"] > 0 and set(history[0]) == {"epoch", "loss", "heat", "box"}
    history = trainer(model, splits, epochs=16)                     # 6 steps
    assert len(history) == 6 and history[-1]["epoch"] == pytest.approx(16.0)
    with pytest.raises(ConfigError, match="data: headbody"):
        trainer(model, (np.zeros((2, 1, 32, 32)), np.zeros(2)))
    metrics = evaluator(model, splits)
    ev = evaluate(model, splits.test_set)
    assert metrics["map50"] == pytest.approx(ev.map50, abs=0.01) and metrics["images"] == 3
    assert metrics["map50_head"] == pytest.approx(ev.per_class["head"]["map50"], abs=0.01)
    assert set(metrics["recall_by_distance"]) == {"head", "body"}
    assert sum(metrics["counts_by_distance"]["head"].values()) == splits.test_set.counts()["heads"]
    json.dumps(metrics)                                              # JSON-ready for result.json

    # the deployed form: an OpenVINO IR taking the camera's U8 frames gets raw frames and detects the same
    from edgedeploy.run.export import ExportConfig, export
    from edgedeploy.export.openvino import OpenVinoConfig

    cfg = ExportConfig(to=("onnx", "openvino"), openvino=OpenVinoConfig(precision="fp32", input_type="u8",
                                                                        scale=(255.0,)))
    results = export(model, cfg, input_shape=INPUT_SHAPE, out=tmp_path, name="tiny")
    ir = next(r.path for r in results if r.format == "openvino")
    deployed = evaluator(ir, splits)
    for key in ("map50", "map50_head", "map50_body"):
        assert deployed[key] == pytest.approx(metrics[key], abs=1.0), (key, deployed, metrics)


def test_report_detection_section_renders(splits, tmp_path, monkeypatch) -> None:
    from edgedeploy.modelfile import save_model_file
    from edgedeploy.report import render_report
    from edgedeploy.report.detection import choices_figure

    torch.manual_seed(0)
    model = build("hw-aware")                          # the zoo's architecture: model.pt rebuilds it by name
    metrics = task("headbody-hw", "evaluator")(model, splits)
    run = tmp_path / "run"
    step = run / "01-evaluate"
    step.mkdir(parents=True)
    save_model_file(model, step / "model.pt", "headbody-hw", [])
    shots = task("headbody-hw", "samples")(model, step, splits)          # what the evaluate step computes
    extras = task("headbody-hw", "extras")(model, splits)
    assert extras["haar"]["scenes"] == 3 and [c["name"] for c in extras["choices"]][::len(extras["choices"]) - 1] \
        == ["baseline", "hw-aware"]
    assert all((step / s["file"]).is_file() for s in shots) and any("real photo" in s["caption"] for s in shots)
    result = {"step": "evaluate", "name": "01-evaluate", "index": 1, "status": "ok", "seconds": 1.0,
              "variant": "hw-aware", "artifacts": ["model.pt", *(s["file"] for s in shots)],
              "data": {"metrics": [{"variant": "hw-aware", **metrics}], "samples": shots, "extras": extras}}
    (step / "result.json").write_text(json.dumps(result))
    (run / "run.json").write_text(json.dumps({
        "recipe": {"model": "headbody-hw", "input": "1x1x352x1280"}, "model": "headbody-hw", "target": "myriadx",
        "host": {}, "versions": {}, "started": None, "finished": None,
        "steps": [{"index": 1, "kind": "evaluate", "dir": "01-evaluate", "status": "ok", "seconds": 1.0}]}))
    from edgedeploy.zoo.headbody import showcase

    def computing(*_a, **_k):
        raise AssertionError("the report re-ran a computation the evaluate step made")

    for name in ("haar_reference", "choices", "overlay_samples"):         # the report only draws
        monkeypatch.setattr(showcase, name, computing)
    html = render_report(run).read_text()
    assert "head recall 15-20 ft" in html and "OpenCV Haar cascades (reference)" in html
    assert "Recall by distance" in html and "Choices impact" in html and "+PixelShuffle up" in html
    assert "not in this evaluate step" not in html and "could not be shown" not in html
    assert "Against the outside reference, on the first 3 held-out scenes" in html
    # overlays: the held-out scenes and the real photos, each an inline JPEG
    assert html.count('src="data:image/jpeg;base64,') >= 3 + 1 and "real photo" in html
    # an older evaluate step without extras: the table and the recall plot, and a note instead of recomputing
    result["data"] = {"metrics": result["data"]["metrics"]}
    (step / "result.json").write_text(json.dumps(result))
    html = render_report(run, out=tmp_path / "old.html").read_text()
    assert "Recall by distance" in html and "OpenCV Haar" not in html
    assert "the Haar comparison, the choices impact: not in this evaluate step" in html
    rows = [{"name": "baseline", "macs": 2e9, "params": 1e5, "traffic_bytes": 6e7, "myriadx_ms": 20.0},
            {"name": "hw-aware", "macs": 1e9, "params": 5e4, "traffic_bytes": 3e7, "myriadx_ms": 10.0}]
    assert "MyriadX estimate" in choices_figure(rows).svg
    # a classifier's evaluate step keeps the standard renderer
    (step / "result.json").write_text(json.dumps({
        "step": "evaluate", "name": "01-evaluate", "index": 1, "status": "ok", "seconds": 1.0, "variant": "x",
        "artifacts": [], "data": {"metrics": {"top1": 97.5}}}))
    html = render_report(run, out=tmp_path / "r2.html").read_text()
    assert "top1" in html and "Recall by distance" not in html
