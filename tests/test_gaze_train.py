"""Training the gaze corrector: the loss really falls, it beats the identity warp, it is seeded, and it is cached."""
from __future__ import annotations

import pytest
import torch

from edgedeploy.errors import ArtifactError, ConfigError
from edgedeploy.zoo import create
from edgedeploy.zoo.gaze import GazeTrainConfig, evaluate_gaze, make_pairs, pretrained_gaze, train_gaze
from edgedeploy.zoo.gaze import train as train_module

TINY = GazeTrainConfig(pairs=24, steps=6, batch_size=8)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_short_training_loss_falls_and_beats_identity():
    result = train_gaze(GazeTrainConfig(pairs=256, steps=150), progress=False)
    assert result.last_loss < 0.75 * result.first_loss, result.history
    scores = evaluate_gaze(result.model, make_pairs(64, seed=100))       # held out: another seed
    assert scores.model.l1 < 0.7 * scores.identity.l1
    assert scores.model.ssim > scores.identity.ssim + 0.1
    assert scores.model.iris_deg < 0.6 * scores.identity.iris_deg
    assert set(result.to_dict()) >= {"history", "first_loss", "last_loss", "seconds", "config"}


def test_training_is_deterministic():
    a = train_gaze(TINY, progress=False)
    b = train_gaze(TINY, progress=False)
    assert a.history == b.history and _same_weights(a.model, b.model)
    c = train_gaze(GazeTrainConfig(pairs=24, steps=6, batch_size=8, seed=1), progress=False)
    assert not _same_weights(a.model, c.model)


def test_pretrained_is_trained_once_then_loaded_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path))
    first = pretrained_gaze(TINY, progress=False)
    files = list((tmp_path / "zoo").glob("gaze-*.pt"))
    assert [f.name for f in files] == [f"gaze-{TINY.digest()}.pt"]

    def no_training(*args, **kwargs):
        raise AssertionError("the cached weights should have been used")
    monkeypatch.setattr(train_module, "train_gaze", no_training)
    assert _same_weights(first, pretrained_gaze(TINY, progress=False))
    assert _same_weights(first, create("gaze", pretrained=True, config=TINY, progress=False))
    assert GazeTrainConfig(pairs=24, steps=7, batch_size=8).digest() != TINY.digest()
    files[0].write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match="delete the file"):
        pretrained_gaze(TINY, progress=False)


def test_config_is_validated():
    with pytest.raises(ConfigError, match="steps"):
        GazeTrainConfig(steps=0)
    with pytest.raises(ConfigError, match="lr"):
        GazeTrainConfig(lr=0.0)
