"""The latency harness: warm-up is untimed, statistics are consistent, threads are pinned and restored."""
from __future__ import annotations

import pytest
import torch

from edgedeploy.errors import ConfigError
from edgedeploy.metrics.latency import measure, stats_from_samples


def test_stats_from_known_samples() -> None:
    s = stats_from_samples([4.0, 1.0, 3.0, 2.0, 10.0], warmup=2, threads=1)
    assert (s.min_ms, s.median_ms, s.mean_ms) == (1.0, 3.0, 4.0)
    assert s.p90_ms == pytest.approx(7.6)                 # linear interpolation between 4 and 10
    assert s.fps == pytest.approx(1000 / 3.0)
    assert s.to_dict()["fps"] == s.fps


def test_measure_counts_calls_and_restores_threads() -> None:
    calls = []
    before = torch.get_num_threads()
    seen_threads = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        seen_threads.append(torch.get_num_threads())
        return x * 2

    s = measure(fn, (torch.ones(8),), warmup=3, repeats=7, threads=1)
    assert len(calls) == 10 and s.repeats == 7 and s.warmup == 3
    assert set(seen_threads) == {1} and torch.get_num_threads() == before
    assert s.min_ms <= s.median_ms <= s.p90_ms


def test_measure_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError):
        measure(lambda: None, repeats=0)
    with pytest.raises(ConfigError):
        measure(lambda: None, threads=0)
