"""Result dataclasses of the profiler: per-layer rows and a Profile with totals."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PRECISION_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}


@dataclass(frozen=True)
class LayerStats:
    """Cost of one layer: a leaf module call, or a functional op called outside any leaf."""

    name: str                         # qualified module path, or "parent/op" for functional ops
    op: str                           # module class (Conv2d) or op name (cat, grid_sampler_2d)
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    params: int                       # parameters first consumed by this layer
    macs: int                         # multiply-accumulates (see metrics.counting for conventions)
    elem_ops: int                     # element-wise operations not counted as MACs (norm, act, add, pool, resize)
    weight_bytes: int                 # parameters + buffers read, at the profile precision
    read_bytes: int                   # activations read from outside the layer
    write_bytes: int                  # activations written that leave the layer
    ops: tuple[str, ...] = ()         # underlying aten / ONNX ops, in order

    @property
    def traffic_bytes(self) -> int:
        """Memory traffic per frame for this layer: weights + activations in + activations out."""
        return self.weight_bytes + self.read_bytes + self.write_bytes


@dataclass(frozen=True)
class EnergyEstimate:
    """Energy per inference in microjoules, split by cause, with the assumption that produced it."""

    compute_uj: float
    sram_uj: float
    dram_uj: float
    assumption: str

    @property
    def total_uj(self) -> float:
        """Total energy per inference (µJ)."""
        return self.compute_uj + self.sram_uj + self.dram_uj


@dataclass
class Profile:
    """What a model costs at one input shape and precision: rows plus totals."""

    model: str
    input_shapes: list[tuple[int, ...]]
    precision: str
    layers: list[LayerStats]
    params: int
    macs: int
    elem_ops: int
    model_size_bytes: dict[str, int]          # on-disk weight size by precision (fp32/fp16/int8)
    peak_activation_bytes: int                # liveness over execution order
    traffic_bytes: int                        # per frame
    energy: EnergyEstimate
    fps: float | None = None
    unsupported: dict[str, int] = field(default_factory=dict)   # op -> count, counted as 0 MACs
    conventions: str = ""
    source: str = "torch"                     # "torch" or "onnx"

    @property
    def bandwidth_gbps(self) -> float | None:
        """Memory bandwidth needed at ``fps`` (GB/s, 1e9 bytes), or None when no fps given."""
        return None if self.fps is None else self.traffic_bytes * self.fps / 1e9

    @property
    def ops(self) -> set[str]:
        """Every op type seen (module classes and functional ops), for target op checks."""
        return {o for row in self.layers for o in row.ops}

    def totals(self) -> dict[str, Any]:
        """Headline numbers as a flat dict."""
        return {
            "params": self.params, "macs": self.macs, "elem_ops": self.elem_ops,
            "model_size_bytes": self.model_size_bytes, "peak_activation_bytes": self.peak_activation_bytes,
            "traffic_bytes_per_frame": self.traffic_bytes, "fps": self.fps,
            "bandwidth_gbps": self.bandwidth_gbps, "energy_uj": self.energy.total_uj,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with rows, totals and the conventions used."""
        d = asdict(self)
        d["totals"] = self.totals()
        d["layers"] = [{**asdict(r), "traffic_bytes": r.traffic_bytes} for r in self.layers]
        return d

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialize to JSON; also write it atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            from .._io import write_bytes_atomic

            write_bytes_atomic(path, text.encode())
        return text

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from .render import profile_renderable

        yield profile_renderable(self, compact=options.max_width < 130)

    def __str__(self) -> str:
        from .render import to_text

        return to_text(self)
