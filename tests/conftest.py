"""Shared fixtures: deterministic seeds and a trained digits CNN (real data: sklearn's digits)."""
from __future__ import annotations

import os

import pytest
import torch


if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)      # one thread per xdist worker: 2 workers on 2 cores, no oversubscription


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def digits_data():
    """sklearn's 1,797 real handwritten digits at 16x16."""
    from edgedeploy.zoo.digits import load_digits_data

    return load_digits_data()


@pytest.fixture(scope="session")
def trained_digits_cnn(digits_data):
    """The zoo's digits CNN trained on the real digits (~99% test top-1)."""
    from edgedeploy.zoo.digits import DigitsCNN, train_classifier

    torch.manual_seed(0)
    model = DigitsCNN()
    train_classifier(model, digits_data, epochs=8, seed=0)
    return model.eval()
