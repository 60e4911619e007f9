"""``load`` a model on a runtime and ``benchmark`` a session with the shared latency harness."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ShapeError
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


@dataclass(frozen=True)
class BenchConfig:
    """A benchmark matrix: runtimes (None: by file type) x thread counts (None: the runtime's default)."""

    runtimes: tuple[str | None, ...] = (None,)
    threads: tuple[int | None, ...] = (None,)
    repeats: int = 50
    warmup: int = 10

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.warmup < 0:
            raise ConfigError(f"repeats must be >= 1 and warmup >= 0 (got {self.repeats}, {self.warmup})")
        if any(t is not None and t < 1 for t in self.threads):
            raise ConfigError(f"thread counts must be >= 1 (got {self.threads})")


@dataclass
class BenchResult:
    """Rows of (artifact, runtime, threads, latency stats) measured side by side, and the host they ran on."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    host: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"host": self.host, "results": self.rows}

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title="latency in ms; speed-up = first row's median / this row's")
        t.add_column("artifact", overflow="fold")
        t.add_column("runtime", no_wrap=True)
        for col in ("thr", "median", "p90", "min", "FPS", "speed-up"):
            t.add_column(col, justify="right", no_wrap=True)
        base = self.rows[0]["median_ms"] if self.rows else 1.0
        for r in self.rows:
            t.add_row(Path(r["artifact"]).name, r["runtime"], str(r["threads"] or "default"),
                      f"{r['median_ms']:.3f}", f"{r['p90_ms']:.3f}", f"{r['min_ms']:.3f}", f"{r['fps']:.1f}",
                      f"{base / r['median_ms']:.2f}x")
        return t


def benchmark_matrix(sources: list[tuple[str, Any, tuple[int, ...] | None]],
                     config: BenchConfig | None = None) -> BenchResult:
    """Time every (label, model file or torch module, input shape) on every runtime x thread count of ``config``."""
    import numpy as np

    from ..metrics.hostinfo import host_info

    config = config or BenchConfig()
    result = BenchResult(host=host_info().to_dict())
    for label, source, shape in sources:
        kwargs: dict[str, Any] = {}
        if not isinstance(source, (str, Path)):
            if shape is None:
                raise ShapeError(f"{label} is a torch model: give its input shape (--input, e.g. 1x3x224x224)")
            kwargs["example_inputs"] = (np.random.default_rng(0).standard_normal(shape).astype(np.float32),)
        for rt in config.runtimes:
            for th in config.threads:
                session = load(source, runtime=rt, threads=th, **kwargs)
                feed = session.example_inputs(shape=shape, strict=True) if not kwargs else None
                stats = benchmark(session, feed, repeats=config.repeats, warmup=config.warmup)
                timed = [list(a.shape) for a in feed] if feed is not None else [list(shape or ())]
                result.rows.append({"artifact": label, "runtime": session.name, "threads": th, "shapes": timed,
                                    **stats.to_dict()})
    return result
