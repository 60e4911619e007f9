"""Shared benchmark plumbing: print the host, time side by side, write JSON results."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"


def banner(title: str) -> dict[str, Any]:
    """Print the benchmark title and the host (CPU model, int8/bf16 flags); return the host as a dict."""
    from edgedeploy.metrics.hostinfo import host_info

    host = host_info()
    print(f"# {title}\n# host: {host}\n# python {sys.version.split()[0]}")
    return host.to_dict()


def best_of(fn: Callable[[], Any], repeats: int = 5) -> tuple[float, Any]:
    """Median wall time (s) of ``repeats`` calls after one warm-up call, and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], out


def save(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench-results/<name>.json`` atomically and return its path."""
    from edgedeploy._io import write_json_atomic

    path = write_json_atomic(RESULTS / f"{name}.json", payload)
    print(f"# wrote {path.relative_to(ROOT)}")
    return path
