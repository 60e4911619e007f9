"""Case study 2 as a recipe: the gaze corrector trained, exported (FP16 IR with FP32 islands) and scored on
held-out eye pairs, the artifacts scored like the torch model, real portraits before/after in the report."""
from __future__ import annotations

import json

import pytest

from edgedeploy.errors import ShapeError
from edgedeploy.run.engine import run_recipe
from edgedeploy.run.recipe import load_recipe, shipped_recipes

RECIPE = """\
name: gaze-small
model: gaze
input: 1x4x48x64
data: gaze
threads: 1
steps:
  - train: {steps: 80}
  - profile: {precision: fp16}
  - export: {to: [onnx, openvino], openvino: {precision: fp16}}
  - evaluate: {}
  - report: {}
"""


def test_the_shipped_gaze_recipe_validates():
    assert {"digits", "gaze"} <= set(shipped_recipes())
    recipe = load_recipe("gaze")
    assert recipe.model == "gaze" and recipe.input == (1, 4, 48, 64)
    export = next(s for s in recipe.steps if s.kind == "export")
    assert export.config.blob.host_fallback and export.config.to == ("onnx", "openvino", "blob")


def test_gaze_dataset_refuses_another_input_shape():
    from edgedeploy.data import resolve

    with pytest.raises(ShapeError, match="use input: 1x4x48x64"):
        resolve("gaze", (1, 3, 48, 64))


@pytest.fixture(scope="module")
def gaze_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gaze")
    (folder / "gaze.yaml").write_text(RECIPE)
    return run_recipe(folder / "gaze.yaml", folder / "run")


def test_trained_corrector_and_its_artifacts_beat_the_identity_warp(gaze_run):
    rows = json.loads((gaze_run.run_dir / "04-evaluate" / "result.json").read_text())["data"]["metrics"]
    torch_row, onnx_row, ir_row = rows
    assert onnx_row["variant"].endswith(".onnx") and ir_row["variant"].endswith(".xml")
    assert torch_row["ssim"] > torch_row["identity_ssim"] + 0.15          # ~0.90 vs 0.62 after 80 steps
    assert torch_row["l1"] < 0.6 * torch_row["identity_l1"]
    assert torch_row["iris_deg"] < 3.0                                    # identity: ~14 deg off
    assert abs(onnx_row["ssim"] - torch_row["ssim"]) < 1e-3
    assert abs(ir_row["ssim"] - torch_row["ssim"]) < 5e-3                 # FP16 IR, sampling kept in FP32


def test_report_shows_real_portraits_and_ssim_as_the_quality(gaze_run):
    html = (gaze_run.run_dir / "05-report" / "report.html").read_text()
    shots = json.loads((gaze_run.run_dir / "04-evaluate" / "result.json").read_text())["data"]["samples"]
    assert {s["file"] for s in shots} >= {"gaze_astronaut.jpg", "gaze_grace_hopper.jpg"}
    assert html.count("data:image/jpeg;base64,") == len(shots)
    assert "astronaut: before | after" in html
    assert " SSIM</span>" in html and "identity_ssim" in html
