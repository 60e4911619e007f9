"""Early exits on real digits and real face crops: fx split with skip connections, training, thresholds,
early termination (executed MACs) and batch compaction."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.compress.early_exit import (ExitTrainConfig, ThresholdConfig, add_early_exits, calibrate_thresholds,
                                            exit_accuracies, train_exits)
from edgedeploy.compress.early_exit.decide import softmax
from edgedeploy.errors import ConfigError, ShapeError
from edgedeploy.zoo.faces import load_face_crops
from edgedeploy.metrics.profile import profile
from edgedeploy.zoo.digits import DigitsCNN
from edgedeploy.zoo.digits_resnet import DigitsResNet

EXITS = ["down", "res"]          # DigitsCNN: the residual add after "res" jumps over the second exit point


@pytest.fixture(scope="module")
def splits(digits_data):
    """Train / held-out / test: the zoo's test split halved into disjoint held-out and test parts."""
    h = len(digits_data.x_test) // 2
    return {"train": (digits_data.x_train, digits_data.y_train),
            "held_out": (digits_data.x_test[:h], digits_data.y_test[:h]),
            "test": (digits_data.x_test[h:], digits_data.y_test[h:])}


@pytest.fixture(scope="module")
def ee(trained_digits_cnn, splits):
    """The trained digits CNN with two early exits, heads trained on the frozen backbone."""
    torch.manual_seed(0)
    model = add_early_exits(trained_digits_cnn, EXITS, example_inputs=splits["train"][0][:8], head="conv-pool-linear")
    train_exits(model, splits["train"], ExitTrainConfig(mode="heads", epochs=3), progress=False)
    return model


def test_split_hands_skip_connections_across_stages_and_reproduces_the_backbone(trained_digits_cnn, digits_data):
    model = add_early_exits(trained_digits_cnn, EXITS, example_inputs=digits_data.x_test[:4])
    assert model.exit_names == ("down", "res", "output")
    assert model.carry_out == [["down"], ["down", "res"], []]       # the skip value crosses the second boundary
    x = digits_data.x_test[:64]
    with torch.no_grad():
        assert torch.equal(model(x)[-1], trained_digits_cnn(x))
    # per-stage MACs: the stage bodies add up to the whole backbone, the heads on top
    heads = sum(profile(h, (1, *t[1:])).macs for h, t in zip(model.heads, [(1, 32, 8, 8)] * 2))
    assert sum(model.stage_macs) - heads == model.full_macs == profile(trained_digits_cnn, (1, 1, 16, 16)).macs
    assert model.unsupported_ops == {}


def test_block_level_exits_inside_a_resnet():
    net = DigitsResNet(width=8).eval()
    model = add_early_exits(net, ["stage1.1", "stage1.0", "stage2.0"], example_inputs=torch.rand(2, 1, 16, 16))
    assert model.exit_names == ("stage1.0", "stage1.1", "stage2.0", "output")    # graph order, not the given order
    x = torch.rand(5, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x)[-1], net(x))


def test_exits_on_a_vision_transformer_read_tokens():
    from edgedeploy.zoo.vit import TinyViT

    vit = TinyViT(depth=3).eval()
    model = add_early_exits(vit, ["blocks.0", "blocks.1"], example_inputs=torch.rand(2, 1, 16, 16))
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        outs = model(x)
        assert torch.equal(outs[-1], vit(x))
    assert [tuple(o.shape) for o in outs] == [(3, 10)] * 3 and model.carry_out == [["blocks_0"], ["blocks_1"], []]
    assert sum(model.stage_macs) - sum(64 * 10 for _ in model.heads) == model.full_macs   # token-mean + linear heads


def test_unknown_and_nested_exit_names_are_named():
    net = DigitsResNet(width=8)
    with pytest.raises(ConfigError, match=r"'stage1\.5'.*did you mean:.*stage1\.0"):
        add_early_exits(net, ["stage1.5"], example_inputs=torch.rand(1, 1, 16, 16))
    with pytest.raises(ConfigError, match=r"'stage1\.0' is inside exit 'stage1'"):
        add_early_exits(net, ["stage1", "stage1.0"], example_inputs=torch.rand(1, 1, 16, 16))
    with pytest.raises(ConfigError, match="head"):
        add_early_exits(net, ["stage1"], example_inputs=torch.rand(1, 1, 16, 16), head="mystery")


class _Gate(nn.Module):
    """Data-dependent Python branch: torch.fx cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.mean() > 0 else x


class _Gated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.gate = _Gate()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.gate(self.conv(x)).mean((2, 3)))


def test_untraceable_module_is_named_and_leaf_modules_work_around_it():
    with pytest.raises(ConfigError, match=r"cannot trace module 'gate' \(_Gate\).*leaf_modules=\['gate'\]"):
        add_early_exits(_Gated(), ["conv"], example_inputs=torch.rand(2, 1, 8, 8))
    model = add_early_exits(_Gated(), ["conv"], example_inputs=torch.rand(2, 1, 8, 8), leaf_modules=["gate"])
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x)[-1], model.backbone(x))


def test_python_values_crossing_an_exit_are_refused():
    class Reshaping(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n = x.shape[0]                      # a batch size read before the exit is wrong after compaction
            return self.b(self.a(x)).reshape(n, 3)

    with pytest.raises(ConfigError, match=r"value 'getitem' \(not a tensor\).*before exit 'a'"):
        add_early_exits(Reshaping(), ["a"], example_inputs=torch.rand(2, 4))


def test_model_must_return_logits():
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.a(x), x

    with pytest.raises(ShapeError, match="logits"):
        add_early_exits(Pair(), ["a"], example_inputs=torch.rand(2, 4))


def test_thresholds_of_one_reproduce_the_full_model(ee, trained_digits_cnn, splits):
    x, y = splits["test"]
    ee.set_thresholds([1.0, 1.0])
    pred = ee.predict(x)
    with torch.no_grad():
        full = trained_digits_cnn(x).numpy()
    assert (pred.exits == 3).all() and pred.histogram() == [0, 0, len(x)]
    np.testing.assert_array_equal(pred.labels, full.argmax(1))
    np.testing.assert_allclose(pred.confidence, softmax(full).max(1), atol=1e-6)
    assert pred.accuracy(y) == pytest.approx(100.0 * float((full.argmax(1) == y.numpy()).mean()))
    assert pred.stage_samples == [len(x)] * 3


def test_heads_only_training_keeps_the_backbone_and_trains_the_exits(ee, trained_digits_cnn, splits):
    before = trained_digits_cnn.state_dict()
    after = ee.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)        # BatchNorm statistics included
    acc = exit_accuracies(ee, *splits["test"])
    assert acc[0] > 80.0 and acc[1] > 90.0 and acc[2] > 97.0            # real exits, not chance (10%)


def test_early_termination_skips_later_stages(ee, splits):
    x, _ = splits["test"]
    calib = calibrate_thresholds(ee, splits["held_out"], splits["test"], max_accuracy_drop=1.0)
    seen = [0, 0, 0]
    hooks = [s.register_forward_pre_hook(lambda _m, args, i=i: seen.__setitem__(i, seen[i] + len(args[0])))
             for i, s in enumerate(ee.stages)]
    try:
        pred = ee.predict(x)
    finally:
        for h in hooks:
            h.remove()
    assert seen == pred.stage_samples                               # what ran is what is reported
    hist = pred.histogram()
    assert seen[0] == len(x) and seen[1] == len(x) - hist[0] and seen[2] == hist[2] < len(x) // 2
    assert pred.executed_macs == sum(m * n for m, n in zip(ee.stage_macs, seen))
    assert pred.saving > 0.25 and pred.saving == pytest.approx(calib.test.saving, abs=1e-9)
    assert hist == calib.test.exit_histogram                      # simulated decisions == real stopping
    assert pred.accuracy(splits["test"][1]) == pytest.approx(calib.test.accuracy)


def test_batch_compaction_gives_the_batch_one_answers(ee, splits):
    x, _ = splits["test"]
    x = x[:96]
    calibrate_thresholds(ee, splits["held_out"], max_accuracy_drop=1.0)
    whole = ee.predict(x)
    chunked = ee.predict(x, batch_size=8)
    singles = [ee.predict(x[i:i + 1]) for i in range(len(x))]
    assert 0 < whole.histogram()[0] < len(x)                      # some samples left early, others went on
    np.testing.assert_array_equal(chunked.labels, whole.labels)
    np.testing.assert_array_equal(chunked.exits, whole.exits)
    np.testing.assert_array_equal(np.concatenate([p.labels for p in singles]), whole.labels)
    np.testing.assert_array_equal(np.concatenate([p.exits for p in singles]), whole.exits)
    np.testing.assert_allclose(np.concatenate([p.confidence for p in singles]), whole.confidence, atol=1e-5)
    assert whole.stage_samples == [sum(p.stage_samples[i] for p in singles) for i in range(3)]
    assert chunked.stage_calls[0] == len(x) // 8


def test_calibration_objectives_and_report(ee, splits):
    res = calibrate_thresholds(ee, splits["held_out"], splits["test"], ThresholdConfig(max_accuracy_drop=0.5))
    assert res.held_out.drop <= 0.5 and res.objective == "max_accuracy_drop"
    assert res.gap == pytest.approx(res.test.drop - 0.5)
    assert sum(res.test.exit_histogram) == res.test.samples == len(splits["test"][0])
    assert ee.thresholds.tolist() == res.thresholds
    d = json.loads(json.dumps(res.to_dict()))                          # JSON-ready for the report
    assert d["test"]["exit_histogram"] == res.test.exit_histogram and len(d["curve"]) == 41
    assert d["curve"][-1]["accuracy"] == pytest.approx(res.test.full_accuracy)     # threshold 1.0 = full model
    fracs = [p["macs_fraction"] for p in d["curve"]]
    assert fracs == sorted(fracs) and fracs[0] < 0.5                     # higher thresholds cost more
    drops = [p["asked_drop"] for p in d["operating_points"]]
    assert drops == sorted(drops)
    budget = calibrate_thresholds(ee, splits["held_out"], splits["test"], target_macs=0.5, criterion="entropy")
    assert budget.held_out.macs_fraction <= 0.5 and budget.criterion == ee.criterion == "entropy"
    assert budget.held_out.accuracy > 90.0
    plain = calibrate_thresholds(ee, splits["held_out"], max_accuracy_drop=2.0)
    careful = calibrate_thresholds(ee, splits["held_out"], max_accuracy_drop=2.0, margin=1.0)
    assert careful.held_out.drop <= plain.held_out.drop
    assert careful.held_out.macs_fraction >= plain.held_out.macs_fraction
    assert careful.to_dict()["margin"] == 1.0
    with pytest.raises(ConfigError, match="not both"):
        ThresholdConfig(max_accuracy_drop=1.0, target_macs=0.5)
    with pytest.raises(ConfigError, match="fraction"):
        calibrate_thresholds(ee, splits["held_out"], target_macs=2e7)
    ee.set_thresholds([1.0, 1.0], "confidence")


def test_joint_training_with_self_distillation(splits):
    torch.manual_seed(0)
    model = add_early_exits(DigitsCNN(), EXITS, example_inputs=splits["train"][0][:4], head="conv-pool-linear")
    res = train_exits(model, splits["train"], ExitTrainConfig(mode="joint", distill=True, epochs=3),
                      eval_data=splits["test"], progress=False)
    acc = res.history[-1]["exit_accuracy"]
    assert len(res.history) == 3 and res.history[-1]["loss"] < res.history[0]["loss"]
    assert min(acc) > 85.0                                      # every exit learned from scratch in 3 epochs
    with pytest.raises(ConfigError, match="mode"):
        ExitTrainConfig(mode="all")
    with pytest.raises(ConfigError, match="3 exits"):
        train_exits(model, splits["train"], ExitTrainConfig(weights=(1.0, 1.0)), progress=False)


def test_face_crops_are_split_before_augmentation():
    faces = load_face_crops(size=32, train_views=4)
    sets = {k: set(v) for k, v in faces.originals.items()}
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"]) and not (sets["val"] & sets["test"])
    assert len(sets["train"]) == 120 and len(sets["val"]) == len(sets["test"]) == 40
    assert faces.x_train.shape == (480, 1, 32, 32) and faces.x_test.shape == (400, 1, 32, 32)
    assert float(faces.y_test.float().mean()) == 0.5 and faces.class_names == ("NOT HUMAN", "HUMAN")
    assert 0.0 <= float(faces.x_train.min()) and float(faces.x_train.max()) <= 1.0


def test_prediction_prints_like_the_tutorial():
    faces = load_face_crops(size=32, train_views=2)
    torch.manual_seed(0)
    model = add_early_exits(DigitsResNet(width=8, num_classes=2), ["stage1.0", "stage1.1", "stage2.0"],
                            example_inputs=faces.x_train[:4], class_names=faces.class_names)
    model.set_thresholds([0.0, 0.0, 0.0])
    lines = str(model.predict(faces.x_test[:3])).splitlines()
    assert len(lines) == 3
    assert all(re.fullmatch(r"PREDICTED LABEL: (NOT HUMAN|HUMAN) CONFIDENCE: \d\.\d{3}, EXIT: 1", ln) for ln in lines)
    d = model.predict(faces.x_test[:3]).to_dict()
    assert d["exit_histogram"] == [3, 0, 0, 0] and d["stage_samples"] == [3, 0, 0, 0]
