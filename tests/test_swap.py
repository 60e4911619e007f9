"""swap(): rules replace layers, the model stays runnable with the same output shape, the table adds up."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from edgedeploy.blocks import (SWAP_RULES, ConvBNAct, GhostConv2d, PartialConv2d, PixelShuffleUpsample,
                               SpaceToDepthStem, swap)
from edgedeploy.blocks._cost import cost
from edgedeploy.errors import ConfigError, ModelRunError, ShapeError


class EncoderDecoder(nn.Module):
    """A small segmentation-style net: strided stem, 3x3 body, strided conv, transposed-conv decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, 16, 3, 2)
        self.body = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.down = ConvBNAct(16, 32, 3, 2)
        self.up = nn.ConvTranspose2d(32, 16, 2, 2)
        self.up2 = nn.ConvTranspose2d(16, 8, 4, 2, 1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        return self.head(self.up2(self.up(self.down(self.body(self.stem(x))))))


ALL = ["stem-s2d", "convtranspose-pixelshuffle", "conv3x3-partial", "conv3x3-ghost"]


def test_swap_all_rules_keeps_model_runnable():
    torch.manual_seed(0)
    model = EncoderDecoder().eval()
    res = swap(model, ALL, (1, 3, 32, 32))
    kinds = {c.name: (c.rule, c.after) for c in res.changes}
    assert kinds == {
        "stem": ("stem-s2d", "SpaceToDepthStem"), "body.0": ("conv3x3-partial", "PartialConv2d"),
        "down": ("conv3x3-ghost", "GhostConv2d"), "up": ("convtranspose-pixelshuffle", "PixelShuffleUpsample"),
        "up2": ("convtranspose-pixelshuffle", "PixelShuffleUpsample"),
    }
    assert isinstance(res.model.stem, SpaceToDepthStem) and isinstance(res.model.down, GhostConv2d)
    assert isinstance(res.model.body[0], PartialConv2d) and isinstance(res.model.up, PixelShuffleUpsample)
    x = torch.randn(2, 3, 64, 48)   # runs at another size too
    y = res.model(x)
    assert y.shape == model(x).shape == (2, 2, 64, 48)
    y.mean().backward()             # and trains
    # the original model is untouched
    assert isinstance(model.stem, ConvBNAct) and isinstance(model.up, nn.ConvTranspose2d)


def test_swap_table_numbers_are_layer_costs():
    model = EncoderDecoder()
    res = swap(model, ["conv3x3-ghost"], (1, 3, 32, 32))
    names = [c.name for c in res.changes]
    assert names == ["stem", "body.0", "down"]          # ghost takes every plain 3x3 conv
    down = next(c for c in res.changes if c.name == "down")
    assert down.input_shape == (1, 16, 16, 16)
    assert down.macs_before == cost(ConvBNAct(16, 32, 3, 2), (1, 16, 16, 16)).macs == 64 * 32 * (144 + 4)
    assert down.macs_after == 64 * 16 * (144 + 4) + 64 * 16 * (25 + 4)
    assert down.params_after == 16 * 144 + 32 + 16 * 25 + 32
    assert res.totals["macs_after"] < res.totals["macs_before"]
    assert res.totals["macs_before"] == cost(model, (1, 3, 32, 32)).macs
    assert res.totals["macs_after"] == cost(res.model, (1, 3, 32, 32)).macs
    text = str(res)
    assert "GhostConv2d" in text and f"{down.macs_before:,}" in text
    assert res.to_dict()["changes"][2]["params_after"] == down.params_after


def test_first_rule_wins_and_stem_only_once():
    res = swap(EncoderDecoder(), ["conv3x3-partial", "stem-s2d"], (1, 3, 32, 32))
    assert [(c.name, c.rule) for c in res.changes] == [("stem", "stem-s2d"), ("body.0", "conv3x3-partial")]
    res2 = swap(nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8, 8, 3, 2, 1)), ["stem-s2d"], (1, 3, 16, 16))
    assert [c.name for c in res2.changes] == ["0"]
    res3 = swap(nn.Sequential(GhostConv2d(3, 8, 3, 2), nn.Conv2d(8, 8, 3, 2, 1)), ["stem-s2d"], (1, 3, 16, 16))
    assert res3.changes == []                           # the stem is the block, not the later strided conv


def test_swap_on_the_digits_cnn_keeps_logits_shape():
    from edgedeploy.zoo.digits import DigitsCNN

    model = DigitsCNN()
    res = swap(model, ["conv3x3-partial", "conv3x3-ghost"], (1, 1, 16, 16))
    assert len(res.changes) == 5
    x = torch.randn(4, 1, 16, 16)
    assert res.model(x).shape == (4, 10)


def test_swap_a_bare_layer():
    res = swap(nn.ConvTranspose2d(8, 4, 2, 2), "convtranspose-pixelshuffle", (1, 8, 6, 6))
    assert isinstance(res.model, PixelShuffleUpsample) and res.model(torch.zeros(1, 8, 6, 6)).shape == (1, 4, 12, 12)


def test_nothing_matches_gives_empty_table():
    res = swap(nn.Sequential(nn.Conv2d(3, 4, 1)), ["conv3x3-ghost"], (1, 3, 8, 8))
    assert res.changes == [] and res.totals["macs_before"] == res.totals["macs_after"]


def test_unknown_rule_lists_choices():
    with pytest.raises(ConfigError, match="stem-s2d"):
        swap(EncoderDecoder(), ["conv-to-magic"], (1, 3, 32, 32))
    assert set(ALL) <= set(SWAP_RULES)


def test_wrong_input_is_a_clear_error():
    with pytest.raises(ModelRunError, match="failed on input 1x5x32x32"):
        swap(EncoderDecoder(), ALL, (1, 5, 32, 32))
    with pytest.raises(ConfigError, match="torch.nn.Module"):
        swap("model.onnx", ALL, (1, 3, 32, 32))
    with pytest.raises(ShapeError):
        swap(EncoderDecoder(), ALL, "1xtwox32x32")
    assert swap(EncoderDecoder(), "conv3x3-ghost", "1x3x32x32").changes    # strings work for both


@pytest.mark.slow
def test_swapped_digits_cnn_trains_to_real_accuracy():
    """Swapping every 3x3 conv for GhostConv cuts MACs ~28% and the net still learns sklearn's real digits."""
    from edgedeploy.zoo.digits import DigitsCNN, accuracy, load_digits_data, train_classifier

    torch.manual_seed(0)
    data = load_digits_data()
    res = swap(DigitsCNN(width=8), ["conv3x3-ghost"], (1, 1, 16, 16))
    assert res.totals["macs_after"] < 0.75 * res.totals["macs_before"]     # 0.716 (thop counting)
    train_classifier(res.model, data, epochs=3, seed=0)
    assert accuracy(res.model, data.x_test, data.y_test) > 80.0      # 87.3 % measured (chance: 10 %)
