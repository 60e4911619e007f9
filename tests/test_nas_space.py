"""NAS search space, model builder and config: hand-counted costs, every block built and deployed, and bad input
(empty or contradictory space, unknown block, unknown key) refused in one line before anything runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgedeploy.compress.nas import (
    BLOCKS,
    Arch,
    NasConfig,
    SearchSpace,
    StageArch,
    StageSpace,
    build_model,
    config_from_dict,
    load_config,
)
from edgedeploy.compress.nas.search import arch_params
from edgedeploy.errors import ConfigError, EdgeDeployError
from edgedeploy.metrics.profile import profile

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("arch", "macs", "params"), [
    # stem 3x3 1->4 at 8x8 (2,304 MACs, 36 + 8 BN) + transition 3x3 s2 4->8 at 4x4 (4,608, 288 + 16) + fc 8->10 (80, 90)
    (Arch(8, "conv", 4, "relu", (StageArch("conv", 1, 8, 3),)), 6992, 438),
    # + one unit: 3x3 8->16 at 4x4 (18,432 MACs, 1,152 + 32) and 1x1 16->8 (2,048, 128 + 16)
    (Arch(8, "conv", 4, "relu", (StageArch("conv", 2, 8, 3, 2.0),)), 27472, 1766),
    # s2d stem: 2x2 patches -> 4 ch at 4x4, 1x1 conv 4->4 (256, 16 + 8); transition at 2x2 (1,152); fc (80)
    (Arch(8, "s2d", 4, "relu", (StageArch("conv", 1, 8, 3),)), 1488, 418),
])
def test_costs_match_a_hand_count(arch, macs, params):
    prof = profile(build_model(arch), arch.input_shape)
    assert (prof.macs, prof.params) == (macs, params)


def test_every_block_builds_runs_and_deploys_identically():
    for block in BLOCKS:
        for stem in ("conv", "strided", "s2d"):
            arch = Arch(16, stem, 8, "relu", (StageArch(block, 2, 8, 3, 2.0), StageArch(block, 2, 16, 5, 1.0)))
            model = build_model(arch, seed=0).eval()
            x = torch.randn(arch.input_shape)
            assert model(x).shape == (1, 10)
            from edgedeploy.blocks.reparam import deploy_form

            deployed, fused = deploy_form(model)
            assert fused == (4 * 2 if block == "mobileone" else 4 if block == "repvgg" else 0)
            assert torch.allclose(deployed(x), model(x), atol=1e-5)


def test_space_size_is_the_product_of_the_applicable_choices():
    stage = StageSpace(blocks=("conv", "repvgg"), depth=(1, 2), width=(8, 16), kernel=(3, 5), expansion=(1, 2))
    space = SearchSpace(stages=(stage,), resolution=(8, 16), stem=("conv", "s2d"), stem_width=(8,), act=("relu",))
    # 2 res x 2 stems x (2 depths x 2 widths x (conv: 2 kernels x 2 expansions + repvgg: 1))
    assert space.size == 2 * 2 * 2 * 2 * (4 + 1)
    rng = np.random.default_rng(0)
    keys = {space.sample(rng).key for _ in range(2000)}
    assert len(keys) == space.size                     # sampling reaches every architecture, nothing else


def test_suggest_round_trips_through_optuna_params_and_json():
    space = SearchSpace()
    rng = np.random.default_rng(1)
    for _ in range(20):
        a = space.sample(rng)
        params = arch_params(a, NasConfig(space=space))
        assert space.suggest(lambda name, choices, p=params: p[name]) == a
        assert Arch.from_dict(a.to_dict()) == a
        assert "s0.expansion" in params or not BLOCKS[a.stages[0].block]["expansion"]


def test_corners_are_the_smallest_of_each_block_combination():
    space = SearchSpace(stages=(StageSpace(("conv", "ghost"), (1, 2), (8, 16)), StageSpace(("dense",), (2,), (16, 32))),
                        resolution=(16, 8), stem=("conv", "s2d"), stem_width=(8, 4))
    corners = space.corners()
    assert len(corners) == 2 * 2 * 1
    assert {c.resolution for c in corners} == {8} and {c.stem_width for c in corners} == {4}
    assert all(c.stages[0].depth == 1 and c.stages[0].width == 8 and c.stages[1].width == 16 for c in corners)


def test_example_config_loads():
    cfg = load_config(ROOT / "configs" / "nas" / "digits.yaml")
    assert cfg.objectives == ("accuracy", "latency") and cfg.constraints.target == "myriadx"
    assert cfg.space.stages[0].depth == (1, 2) and len(cfg.space.stages) == 2
    assert config_from_dict(cfg.to_dict()) == cfg               # what a study stores reads back identically


@pytest.mark.parametrize(("space", "message"), [
    ({"stages": []}, "no stages"),
    ({"stages": [{"blocks": ["conv"], "width": []}]}, "width: no choices"),
    ({"stages": [{"blocks": ["transformer"]}]}, "unknown block 'transformer'"),
    ({"stages": [{"depth": {"low": 3, "high": 1}}]}, "range low=3 > high=1"),
    ({"stages": [{}, {}, {}], "resolution": [4]}, "resolution 4 cannot be halved 3 times"),
    ({"stages": [{}, {}], "resolution": [16, 4], "stem": ["conv", "strided"]}, "resolution 4 cannot be halved 3 "),
    ({"stages": [{}], "resolution": [9], "stem": ["s2d"]}, "needs an even resolution"),
    ({"stages": [{"blocks": ["partial"], "width": [2, 8]}]}, "block 'partial' needs width >= 4"),
    ({"stages": [{"kernel": [4]}]}, "kernel 4 is not an odd size"),
    ({"stages": [{"widths": [8]}]}, "unknown key 'widths'"),
    ({"stages": [{}], "stem": ["pool"]}, "unknown stem 'pool'"),
])
def test_bad_search_space_is_one_clear_line(space, message):
    with pytest.raises(ConfigError, match=message) as info:
        config_from_dict({"space": space})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("options", "message"), [
    ({"objectives": ["accuracy", "speed"]}, "unknown objective 'speed'"),
    ({"objectives": []}, "objectives is empty"),
    ({"objectives": ["accuracy", "proxy"]}, "keep one"),
    ({"sampler": "grid"}, "unknown sampler 'grid'"),
    ({"constraints": {"latency_ms": -1}}, "latency_ms must be a positive"),
    ({"constraints": {"target": "nonexistent-npu"}}, "nonexistent-npu"),
    ({"constraints": {"max_params": 5}}, "unknown key 'max_params'"),
    ({"heartbeat_s": 10, "grace_s": 5}, "must exceed heartbeat_s"),
    ({"study": "my study!"}, "study name"),
    ({"epoch": 3}, "unknown key 'epoch'"),
])
def test_bad_options_are_one_clear_line(options, message):
    with pytest.raises(EdgeDeployError, match=message):       # ConfigError; TargetError for the unknown target
        config_from_dict({"space": {"stages": [{}]}, **options})


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: {stages: [{blocks: [conv, nope]}]}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: stage 1: unknown block 'nope'"):
        load_config(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("space: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(broken)
