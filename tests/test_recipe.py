"""YAML recipes: validated before anything runs (errors name the key and its line), run into NN-step folders,
resumed without redoing unchanged steps, and a failed step keeps what came before."""
from __future__ import annotations

import json
import textwrap

import pytest

from edgedeploy.cli import main
from edgedeploy.errors import ConfigError
from edgedeploy.run.engine import run_recipe
from edgedeploy.run.recipe import load_recipe

SMALL = """\
name: small
model: digits-cnn
input: 1x1x16x16
target: myriadx
data: digits
threads: 1
steps:
  - train: {epochs: 2}
  - profile: {precision: fp16, fps: 30}
  - check: {}
  - prune: {granularity: channel, amount: 0.5}
  - quantize: {mode: int8-static}
  - export: {to: [onnx, openvino]}
  - bench: {threads: [1], repeats: 3, warmup: 1}
  - evaluate: {}
"""


def _write(tmp_path, text, name="r.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda s: s.replace("  - check: {}", "  - chek: {}"), "line 10: steps.2.chek is not a step (did you mean check?)"),
    (lambda s: s.replace("amount: 0.5", "amount: lots"), "line 11: steps.3.prune.amount Input should be a valid"),
    (lambda s: s.replace("amount: 0.5", "amount: 1.5"), "steps.3.prune is invalid: amount must be a fraction"),
    (lambda s: s.replace("granularity: channel", "granularity: blob"), "unknown granularity 'blob'"),
    (lambda s: s.replace("repeats: 3", "repeat: 3"), "line 14: steps.6.bench.repeat is not an option of bench"),
    (lambda s: s.replace("model: digits-cnn", "model: missing.onnx"), "line 2: model names the file missing.onnx"),
    (lambda s: s.replace("data: digits", "data: ./nowhere/"), "line 5: data names ./nowhere/"),
    (lambda s: s.replace("target: myriadx", "target: tpu9"), "line 4: target is not usable: unknown target 'tpu9'"),
    (lambda s: s.replace("input: 1x1x16x16", "input: 1x1xAx16"), "line 3: input cannot parse input shape"),
    (lambda s: s.replace("name: small", "nmae: small"), "line 1: nmae is not a recipe key"),
    (lambda s: s.replace("threads: 1", "threads: 0"), "threads must be a positive number"),
    (lambda s: s.split("steps:")[0] + "steps: []\n", "steps is empty"),
    (lambda s: s + "  - export: {to: [tflite]}\n", "unknown export format"),
    (lambda s: s.replace("steps:", "steps: [unclosed"), "not valid YAML at line"),
])
def test_validation_names_key_and_line(tmp_path, edit, needle):
    with pytest.raises(ConfigError) as err:
        load_recipe(_write(tmp_path, edit(SMALL)))
    assert needle in str(err.value)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recipe")
    recipe = folder / "small.yaml"
    recipe.write_text(SMALL)
    return run_recipe(recipe, folder / "run"), recipe


def test_run_writes_one_folder_per_step_with_results(small_run):
    result, _ = small_run
    assert result.ok and [s.status for s in result.steps] == ["ok"] * 8
    run = result.run_dir
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == [
        "01-train", "02-profile", "03-check", "04-prune", "05-quantize", "06-export", "07-bench", "08-evaluate"]
    meta = json.loads((run / "run.json").read_text())
    assert meta["model"] == "digits-cnn" and len(meta["steps"]) == 8 and meta["host"]["cores"] >= 1
    profile = json.loads((run / "02-profile" / "result.json").read_text())
    assert profile["data"]["macs"] == 1_806_976 and profile["variant"] == "baseline"
    prune = json.loads((run / "04-prune" / "result.json").read_text())
    assert prune["variant"] == "pruned" and prune["data"]["macs_ratio"] > 3.5
    assert (run / "04-prune" / "model.pt").is_file() and (run / "04-prune" / "model.onnx").is_file()
    evaluate = json.loads((run / "08-evaluate" / "result.json").read_text())["data"]["metrics"]
    assert evaluate[0]["variant"] == "pruned" and 0 <= evaluate[0]["top1"] <= 100     # pruned, not recovered
    quantized = next(r for r in evaluate if r["variant"].startswith("quantized-int8-static"))
    assert abs(quantized["top1"] - evaluate[0]["top1"]) <= 2.0       # INT8 of the pruned model, on the same digits
    bench = json.loads((run / "07-bench" / "result.json").read_text())["data"]["results"]
    assert {r["runtime"] for r in bench} >= {"torch", "onnxruntime", "openvino"}


def test_resume_skips_unchanged_steps_and_reruns_changed_ones(small_run, tmp_path):
    result, recipe = small_run
    again = run_recipe(recipe, result.run_dir, resume=True)
    assert [s.status for s in again.steps] == ["cached"] * 8
    changed = _write(tmp_path, recipe.read_text().replace("amount: 0.5", "amount: 0.25"))
    third = run_recipe(changed, result.run_dir, resume=True)
    assert [s.status for s in third.steps] == ["cached"] * 3 + ["ok"] * 5    # from the changed step on
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        run_recipe(recipe, result.run_dir)


def test_a_failed_step_keeps_earlier_ones_and_the_cli_says_which(tmp_path, capsys):
    recipe = _write(tmp_path, """\
        model: digits-cnn
        input: 1x1x16x16
        data: digits
        steps:
          - profile: {}
          - train: {epochs: 1}
          - check: {}
    """)
    out = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "step 3 (check) failed" in err and "needs a target" in err and "Traceback" not in err
    steps = json.loads((out / "run.json").read_text())["steps"]
    assert [s["status"] for s in steps] == ["ok", "ok", "failed"]
    assert (out / "02-train" / "model.pt").is_file()
