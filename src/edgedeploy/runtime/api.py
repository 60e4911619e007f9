"""``load`` a model on a runtime and ``benchmark`` a session with the shared latency harness."""
from __future__ import annotations

from typing import Any

from ..metrics.latency import LatencyStats, measure
from .base import Session, get_runtime, runtime_for


def load(path_or_model: Any, runtime: str | None = None, threads: int | None = None, **options: Any) -> Session:
    """Open a .onnx/.xml file or an nn.Module as a Session (runtime chosen from the file type when not given)."""
    cls = get_runtime(runtime) if runtime is not None else runtime_for(path_or_model)
    return cls(path_or_model, threads=threads, **options)


def benchmark(session: Session, inputs: Any = None, threads: int | None = None, repeats: int = 50,
              warmup: int = 10, min_time_s: float = 0.0) -> LatencyStats:
    """Latency/throughput of ``session`` on ``inputs`` (seeded random inputs when None).

    ``threads`` reopens the session with that thread count when it differs (ONNX Runtime and
    OpenVINO fix their thread pools when a session is created; torch is pinned per call).
    """
    if threads is not None and threads != session.threads:
        session = session.reopen(threads)
    arrays = session.prepare(inputs) if inputs is not None else session.example_inputs()
    batch = int(arrays[0].shape[0]) if arrays and arrays[0].ndim else 1
    infer = session._infer  # validated once above; time only the runtime call
    return measure(infer, (arrays,), warmup=warmup, repeats=repeats, threads=session.threads, batch=batch,
                   min_time_s=min_time_s)
