"""The recipe step ``nas``: a tiny search on the recipe's data whose chosen architecture becomes the run's model
(profile and export follow it), survives --resume through model.pt, and bad options fail at recipe load."""
from __future__ import annotations

import json
import textwrap

import pytest

from edgedeploy.errors import ConfigError
from edgedeploy.run.engine import run_recipe
from edgedeploy.run.recipe import load_recipe

torch = pytest.importorskip("torch")
pytest.importorskip("optuna")

NAS = """\
space:
  resolution: [16]
  stem: [conv, s2d]
  stem_width: [8]
  stages:
    - blocks: [conv, repvgg]
      depth: [1]
      width: [8, 16]
      kernel: [3]
objectives: [accuracy, latency]
sampler: random
trials: 4
epochs: 1
final_epochs: 2
latency_repeats: 10
heartbeat_s: 2
"""

RECIPE = """\
name: nas-small
model: digits-cnn
input: 1x1x8x8
data: digits
threads: 1
steps:
  - nas: {{config: {config}, trials: 3}}
  - profile: {{precision: fp32}}
  - export: {{to: [onnx]}}
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_nas_step_makes_the_chosen_architecture_the_runs_model_and_resumes(tmp_path):
    from edgedeploy.compress.nas import load_chosen
    from edgedeploy.metrics.profile import profile
    from edgedeploy.modelref import load_model

    cfg = _write(tmp_path, "nas.yaml", NAS)
    recipe = _write(tmp_path, "r.yaml", RECIPE.format(config=cfg))
    result = run_recipe(recipe, tmp_path / "run")
    assert result.ok and [s.status for s in result.steps] == ["ok"] * 3
    run = result.run_dir
    step = json.loads((run / "01-nas" / "result.json").read_text())
    assert step["variant"] == "nas" and "model.pt" in step["artifacts"]
    data = step["data"]
    assert len(data["trials"]) == 3 and data["chosen"] is not None             # the step's override of trials: 4
    chosen = load_chosen(run / "01-nas" / "search" / "best")
    # the recipe's input fixed the resolution (the config asked for 16) and the channels
    assert chosen.arch_dict["resolution"] == 8 and chosen.arch_dict["in_channels"] == 1
    assert data["final"]["arch"] == chosen.arch_key
    # the steps after it work on the chosen architecture, not on digits-cnn
    prof = json.loads((run / "02-profile" / "result.json").read_text())
    assert prof["variant"] == "nas" and prof["data"]["macs"] == profile(chosen, (1, 1, 8, 8)).macs
    assert (run / "03-export" / "model.onnx").is_file() or any((run / "03-export").glob("*.onnx"))
    # model.pt records the architecture: load_model rebuilds it with the retrained weights
    again = load_model(str(run / "01-nas" / "model.pt"))
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert again.arch_key == chosen.arch_key
    with torch.no_grad():
        assert torch.equal(again(x), chosen(x))
    # --resume: the search is not redone; a changed later step runs on the restored model
    changed = _write(tmp_path, "r2.yaml", recipe.read_text().replace("precision: fp32", "precision: fp16"))
    third = run_recipe(changed, run, resume=True)
    assert [s.status for s in third.steps] == ["cached", "ok", "ok"]
    prof16 = json.loads((run / "02-profile" / "result.json").read_text())
    source_macs = profile(load_model("digits-cnn"), (1, 1, 8, 8)).macs
    assert prof16["data"]["macs"] == prof["data"]["macs"] != source_macs         # the searched model, restored
    assert prof16["variant"] == "nas"


@pytest.mark.parametrize(("options", "needle"), [
    ("{trails: 3}", "steps.0.nas.trails is not an option of nas"),
    ("{final_epochs: 0}", "final_epochs must be >= 1"),
    ("{config: nowhere.yaml}", "NAS config nowhere.yaml does not exist"),
    ("{sampler: grid}", "sampler"),
])
def test_bad_nas_step_options_fail_at_recipe_load(tmp_path, options, needle):
    text = RECIPE.format(config="x").replace("{config: x, trials: 3}", options)
    with pytest.raises(ConfigError, match=needle):
        load_recipe(_write(tmp_path, "r.yaml", text))
