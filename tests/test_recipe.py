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
    (lambda s: s.replace("epochs: 2", "epoch: 2"), "line 8: steps.0.train.epoch is not an option of digits-cnn's "
                                                   "training loop; valid options: epochs, seed"),
    (lambda s: s.replace("model: digits-cnn", "model: resnet18"), "steps.0.train needs a zoo model with a training"),
    (lambda s: s.replace("epochs: 2", "epochs: -3"), "line 8: steps.0.train.epochs must be > 0, got -3"),
    (lambda s: s.replace("epochs: 2", "epochs: 2.5"), "steps.0.train.epochs must be an integer, got 2.5"),
    (lambda s: s.replace("epochs: 2", "epochs: five"), "steps.0.train.epochs must be an integer, got 'five'"),
    (lambda s: s.replace("epochs: 2", "epochs: true"), "steps.0.train.epochs must be an integer, got True"),
    (lambda s: s.replace("epochs: 2", "seed: -1"), "steps.0.train.seed must be >= 0, got -1"),
    (lambda s: s.replace("threads: 1", "threads: one"), "line 6: threads must be an integer, got 'one'"),
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


def test_architecture_changes_survive_resume(tmp_path):
    """A swapped then pruned model is saved as source + recorded transforms + tensors, and a resumed run rebuilds it:
    the cached steps' model answers exactly like the one the first run made."""
    import torch

    recipe = _write(tmp_path, """\
        model: digits-cnn
        input: 1x1x16x16
        data: digits
        threads: 1
        steps:
          - train: {epochs: 1}
          - swap: {rules: [conv3x3-ghost]}
          - prune: {granularity: channel, amount: 0.25}
          - evaluate: {}
    """)
    first = run_recipe(recipe, tmp_path / "run")
    assert first.ok
    from edgedeploy.modelref import load_model

    pruned = load_model(str(tmp_path / "run" / "03-prune" / "model.pt"))
    assert any(type(m).__name__ == "GhostConv2d" for m in pruned.modules())
    again = run_recipe(recipe, tmp_path / "run", resume=True)
    assert [s.status for s in again.steps] == ["cached"] * 4
    x = torch.rand(5, 1, 16, 16)
    swapped = load_model(str(tmp_path / "run" / "02-swap" / "model.pt"))
    with torch.no_grad():
        assert swapped(x).shape == pruned(x).shape == (5, 10)
    ev = json.loads((tmp_path / "run" / "04-evaluate" / "result.json").read_text())["data"]["metrics"]
    assert ev[0]["variant"] == "pruned"


def test_bad_transform_records_are_refused(tmp_path):
    from edgedeploy.errors import ModelLoadError
    from edgedeploy.modelfile import save_model_file
    from edgedeploy.modelref import load_model
    from edgedeploy.zoo.digits import DigitsCNN

    path = save_model_file(DigitsCNN(), tmp_path / "m.pt", "digits-cnn", [{"kind": "os:system", "cmd": "true"}])
    with pytest.raises(ModelLoadError, match="transform 'os:system'; known: swap, reparameterize, mod"):
        load_model(str(path))


def test_early_exit_and_mod_steps_run_and_report(tmp_path):
    recipe = _write(tmp_path, """\
        model: digits-cnn
        input: 1x1x16x16
        data: digits
        threads: 1
        steps:
          - train: {epochs: 2}
          - early_exit:
              exits: [down]
              head: conv-pool-linear
              train: {mode: heads, epochs: 2}
              thresholds: {max_accuracy_drop: 1.0}
              export: {runtimes: [onnxruntime]}
              timed_samples: 20
          - report: {}
    """)
    result = run_recipe(recipe, tmp_path / "run")
    assert result.ok, [s.error for s in result.steps]
    data = json.loads((tmp_path / "run" / "02-early_exit" / "result.json").read_text())["data"]
    test = data["calibration"]["test"]
    assert test["samples"] == 449 and test["drop"] <= 3.0 and sum(test["exit_histogram"]) == 449
    assert data["export"]["parity"]["onnxruntime"]["decisions"]["labels_equal"] >= 47
    assert data["latency"]["onnxruntime"]["full_ms"] > 0 and data["latency"]["onnxruntime"]["samples"] == 20
    html = (tmp_path / "run" / "03-report" / "report.html").read_text()
    assert "Early exits: accuracy vs compute" in html and "staged top-1" in html
    # a MoD step needs token blocks: on a CNN it says which module names it looked for
    bad = _write(tmp_path, SMALL.replace("  - check: {}", "  - mod: {capacity: 0.5}"), "bad.yaml")
    res = run_recipe(bad, tmp_path / "run2")
    failed = next(s for s in res.steps if s.status == "failed")
    assert not res.ok and failed.kind == "mod" and "blocks" in failed.error, failed.error


def test_mod_step_routes_tokens_and_the_routed_model_resumes(tmp_path):
    recipe = _write(tmp_path, """\
        model: tiny-vit
        input: 1x1x16x16
        data: digits
        threads: 1
        steps:
          - train: {epochs: 1}
          - mod: {capacity: 0.5, skip_first: 1}
          - train: {epochs: 1}
          - evaluate: {}
    """)
    first = run_recipe(recipe, tmp_path / "run")
    assert first.ok, [s.error for s in first.steps]
    mod = json.loads((tmp_path / "run" / "02-mod" / "result.json").read_text())["data"]
    assert len(mod["routed"]) == 5 and 0.5 < mod["macs_ratio"] < 0.7
    top1 = json.loads((tmp_path / "run" / "04-evaluate" / "result.json").read_text())["data"]["metrics"][0]
    again = run_recipe(recipe, tmp_path / "run", resume=True)
    assert [s.status for s in again.steps] == ["cached"] * 4
    from edgedeploy.modelref import load_model

    routed = load_model(str(tmp_path / "run" / "03-train" / "model.pt"))
    assert sum(type(m).__name__ == "MoDBlock" for m in routed.modules()) == 5
    from edgedeploy.compress.distill_report import top1 as accuracy
    from edgedeploy.zoo.digits import load_digits_data

    # the rebuilt model (tiny-vit + recorded mod transform + saved tensors) is the one the run evaluated
    assert top1["variant"] == "mod" and round(accuracy(routed, load_digits_data(16)), 3) == top1["top1"]


def test_the_starting_model_carries_the_recipes_variant_name(tmp_path):
    assert load_recipe("headbody").variant == "hw-aware" and load_recipe("digits").variant == "baseline"
    recipe = _write(tmp_path, """\
        model: digits-cnn
        variant: student
        input: 1x1x16x16
        steps:
          - profile: {}
        """)
    run = run_recipe(recipe, tmp_path / "run")
    assert json.loads((run.run_dir / "01-profile" / "result.json").read_text())["variant"] == "student"


def test_an_interrupted_run_says_so_and_its_report_is_not_a_pass(tmp_path, monkeypatch, capsys):
    """Ctrl-C during step 3: run.json records the interruption and the steps that never ran; `report` of that
    folder says 'incomplete run' (never PASS), and --resume finishes it."""
    from edgedeploy.report.build import overall_verdict
    from edgedeploy.report.rundir import load_run
    from edgedeploy.run import engine

    recipe = _write(tmp_path, """\
        model: digits-cnn
        input: 1x1x16x16
        target: myriadx
        data: digits
        steps:
          - profile: {precision: fp16, fps: 30}
          - check: {}
          - export: {to: [onnx]}
          - evaluate: {}
    """)
    out = tmp_path / "run"

    def ctrl_c(step, state, folder):
        raise KeyboardInterrupt

    monkeypatch.setitem(engine.RUNNERS, "export", ctrl_c)
    assert main(["run", str(recipe), "--out", str(out)]) == 130
    meta = json.loads((out / "run.json").read_text())
    assert meta["interrupted"] and meta["finished"] is None
    assert [s["status"] for s in meta["steps"]] == ["ok", "ok"]
    assert not (out / "03-export").exists()                  # the interrupted step's empty folder is gone
    run = load_run(out)
    assert run.never_ran == ("03-export", "04-evaluate")
    status, head, lines = overall_verdict(run)
    assert status == "UNKNOWN" and head.startswith("incomplete run: digits-cnn on myriadx")
    assert "never ran: 03-export, 04-evaluate" in lines[0] and "--resume" in lines[0]
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "UNKNOWN incomplete run" in printed and "PASS" not in printed
    html = (out / "report.html").read_text()
    assert "incomplete run" in html and html.count("the run was interrupted before this step finished") == 2
    monkeypatch.undo()
    assert main(["run", str(recipe), "--out", str(out), "--resume"]) == 0
    meta = json.loads((out / "run.json").read_text())
    assert "interrupted" not in meta and meta["finished"]
    assert overall_verdict(load_run(out))[0] == "PASS"
