"""Latency harness: honest warm-up, pinned thread count, robust statistics."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one workload in milliseconds, with throughput."""

    min_ms: float
    median_ms: float
    mean_ms: float
    p90_ms: float
    std_ms: float
    repeats: int
    warmup: int
    threads: int | None
    batch: int = 1

    @property
    def fps(self) -> float:
        """Frames per second at the median latency (batch frames per call)."""
        return 1000.0 * self.batch / self.median_ms if self.median_ms > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict including the derived FPS."""
        return {**asdict(self), "fps": self.fps}

    def __str__(self) -> str:
        return (f"median {self.median_ms:.3f} ms (min {self.min_ms:.3f}, p90 {self.p90_ms:.3f}, "
                f"std {self.std_ms:.3f}) = {self.fps:.1f} FPS over {self.repeats} runs")


def _percentile(sorted_vals: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values (q in [0, 100])."""
    if len(sorted_vals) == 1:
        return sorted_vals[0]
    pos = (len(sorted_vals) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def stats_from_samples(samples_ms: Sequence[float], warmup: int, threads: int | None, batch: int = 1) -> LatencyStats:
    """Summarize raw per-call latencies (ms) into LatencyStats."""
    if not samples_ms:
        raise ConfigError("no latency samples: repeats must be >= 1")
    s = sorted(samples_ms)
    return LatencyStats(
        min_ms=s[0], median_ms=statistics.median(s), mean_ms=statistics.fmean(s),
        p90_ms=_percentile(s, 90), std_ms=statistics.pstdev(s) if len(s) > 1 else 0.0,
        repeats=len(s), warmup=warmup, threads=threads, batch=batch,
    )


def measure(fn: Callable[..., Any], inputs: Sequence[Any] = (), warmup: int = 10, repeats: int = 50,
            threads: int | None = None, batch: int = 1, min_time_s: float = 0.0) -> LatencyStats:
    """Time ``fn(*inputs)``: ``warmup`` untimed calls, then ``repeats`` timed calls (or until ``min_time_s``).

    ``threads`` pins torch's intra-op thread count for the duration (runtimes that own their
    thread pools, e.g. ONNX Runtime or OpenVINO sessions, are configured when created).
    """
    if warmup < 0 or repeats < 1:
        raise ConfigError(f"warmup must be >= 0 and repeats >= 1 (got warmup={warmup}, repeats={repeats})")
    import torch

    prev = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be >= 1 (got {threads})")
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                fn(*inputs)
            samples: list[float] = []
            start = time.perf_counter()
            while len(samples) < repeats or (time.perf_counter() - start) < min_time_s:
                t0 = time.perf_counter()
                fn(*inputs)
                samples.append((time.perf_counter() - t0) * 1000.0)
    finally:
        torch.set_num_threads(prev)
    return stats_from_samples(samples, warmup, threads, batch)
