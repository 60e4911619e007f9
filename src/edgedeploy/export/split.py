"""Split an ONNX model into a device part the MyriadX compiler accepts and a host part (e.g. a grid_sample warp).

Where the cut goes: every node the device rejects (by default: not in ``myriadx_ops.yaml``, e.g. GridSample)
and everything downstream of it runs on the host. With ``pull="arithmetic"`` (default) the host also takes
the weightless arithmetic and layout nodes (Add, Mul, Slice, Unsqueeze, Concat ...) that only feed the host
part: on the device those would run in FP16, which is exactly what breaks sampling coordinates, and on the
host they cost microseconds in FP32. The cut then sits right after the network's last activation (for the
gaze model: the Tanh flow and Softmax brightness outputs). Tensors the host needs that are computed from the
graph inputs by such cheap nodes alone (e.g. ``x[:, 0:1]``) are recomputed on the host, not transferred.
Both parts are extracted with ``onnx.utils.Extractor``, checked, and chained on ONNX Runtime against the
original (parity), also with the device outputs rounded to FP16 as the MyriadX returns them.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import ensure_dir
from ..errors import ArtifactError, ConfigError, UnsupportedOpError
from ._common import publish, staging
from .result import Parity, compare_outputs

PULLS = ("arithmetic", "none")
# weightless nodes cheap enough to run on the host in FP32 (no activations, no learned layers)
_CHEAP = frozenset({"Add", "Sub", "Mul", "Div", "Neg", "Concat", "Slice", "Gather", "Squeeze", "Unsqueeze",
                    "Reshape", "Transpose", "Identity", "Flatten", "Split", "Expand", "Cast", "Constant", "Shape",
                    "ConstantOfShape", "Range", "Floor", "Ceil", "Round", "Clip", "Min", "Max"})


@dataclass(frozen=True)
class SplitConfig:
    """``unsupported``: op types the device rejects (None = every op outside the MyriadX 2021.4 table);
    ``pull``: "arithmetic" moves cheap coordinate/layout nodes to the host (FP32), "none" cuts right at the
    unsupported ops; parity tolerance of the chained parts vs the original (``atol + rtol * max|ref|``)."""

    unsupported: frozenset[str] | None = None
    pull: str = "arithmetic"
    atol: float = 1e-4
    rtol: float = 1e-5
    benchmark_repeats: int = 200

    def __post_init__(self) -> None:
        if self.pull not in PULLS:
            raise ConfigError(f"unknown pull={self.pull!r}; choose one of: {', '.join(PULLS)}")
        if self.atol < 0 or self.rtol < 0 or self.benchmark_repeats < 0:
            raise ConfigError("atol, rtol and benchmark_repeats must be >= 0")


@dataclass(frozen=True)
class SplitResult:
    """The two ONNX parts, what crosses between them, and how the chain compares with the original.

    ``fp16_transfer_max_abs``: the chain's max abs error vs the original when the device outputs are rounded
    to FP16 (what the MyriadX sends back). ``host_latency_ms``: median of the host part on ONNX Runtime, 1
    thread. ``transfer_bytes``: device outputs per inference at FP16."""

    device: Path
    host: Path
    device_outputs: tuple[str, ...]
    host_inputs: tuple[str, ...]
    device_ops: dict[str, int]
    host_ops: dict[str, int]
    parity: Parity
    fp16_transfer_max_abs: float
    host_latency_ms: float | None
    transfer_bytes: int
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict."""
        return {"device": str(self.device), "host": str(self.host), "device_outputs": list(self.device_outputs),
                "host_inputs": list(self.host_inputs), "device_ops": dict(self.device_ops),
                "host_ops": dict(self.host_ops), "parity": self.parity.to_dict(),
                "fp16_transfer_max_abs": self.fp16_transfer_max_abs, "host_latency_ms": self.host_latency_ms,
                "transfer_bytes": self.transfer_bytes, "warnings": list(self.warnings)}

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"split: {self.device.name} (device) + {self.host.name} (host)", show_header=False)
        t.add_row("device ops", ", ".join(f"{k} x{v}" for k, v in sorted(self.device_ops.items())))
        t.add_row("host ops", ", ".join(f"{k} x{v}" for k, v in sorted(self.host_ops.items())))
        t.add_row("device -> host", f"{', '.join(self.device_outputs)} ({self.transfer_bytes} bytes at FP16)")
        t.add_row("chain parity", f"max abs {self.parity.max_abs:.3g} vs the original on onnxruntime")
        t.add_row("FP16 transfer", f"max abs {self.fp16_transfer_max_abs:.3g}")
        if self.host_latency_ms is not None:
            t.add_row("host part", f"{self.host_latency_ms:.3f} ms median (onnxruntime, 1 thread)")
        return t


def split_model(onnx_path: str | os.PathLike[str], config: SplitConfig | None = None,
                out: str | os.PathLike[str] | None = None, eval_data: Sequence[Any] | None = None,
                name: str | None = None) -> SplitResult:
    """Write ``<name>_device.onnx`` and ``<name>_host.onnx`` into ``out``; verify the chain on ``eval_data``.

    ``eval_data``: inputs for the parity check (one array per sample for a single-input model, or tuples);
    None uses seeded uniform inputs in [0, 255]."""
    import onnx
    from onnx.utils import Extractor

    config = config or SplitConfig()
    src = Path(onnx_path)
    if not src.is_file():
        raise ArtifactError(f"ONNX file {src} does not exist; export it first (export_onnx)")
    model = onnx.shape_inference.infer_shapes(onnx.load(str(src)), strict_mode=True)
    name = name or src.stem
    notes: list[str] = []
    device_outs, host_ins, graph_outs_device = _cut(model, config, src, notes)
    extractor = Extractor(model)
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    device = extractor.extract_model(inputs, device_outs + graph_outs_device)
    host_outputs = [o.name for o in model.graph.output if o.name not in graph_outs_device]
    host = extractor.extract_model(host_ins, host_outputs)
    for part in (device, host):
        part.ir_version, part.producer_name = model.ir_version, "edgedeploy.split"
        onnx.checker.check_model(part, full_check=True)
    left = {n.op_type for n in device.graph.node} & (config.unsupported or frozenset())
    if config.unsupported is None:
        from .myriad_ops import check_myriad_ops

        check_myriad_ops(device, f"{name}_device.onnx")     # nothing the MyriadX rejects may stay on the device
    elif left:
        raise UnsupportedOpError(f"{src.name}: {sorted(left)} stayed on the device part; report this graph")
    folder = ensure_dir(out if out is not None else src.parent)
    samples = _samples(eval_data, model)
    with staging(folder) as stage:
        names = [f"{name}_device.onnx", f"{name}_host.onnx"]
        onnx.save(device, stage / names[0])
        onnx.save(host, stage / names[1])
        parity, fp16_err, host_feed = _chain(src, stage / names[0], stage / names[1], samples, config)
        latency = _host_latency(stage / names[1], host_feed, config)
        files = publish(stage, folder, names)
    vi = {v.name: v for v in list(model.graph.value_info) + list(model.graph.output)}
    transfer = sum(2 * int(np.prod([d.dim_value for d in vi[t].type.tensor_type.shape.dim])) for t in device_outs)
    return SplitResult(device=files[0], host=files[1], device_outputs=tuple(device_outs), host_inputs=tuple(host_ins),
                       device_ops=_hist(device), host_ops=_hist(host), parity=parity, fp16_transfer_max_abs=fp16_err,
                       host_latency_ms=latency, transfer_bytes=transfer, warnings=tuple(notes))


def _unsupported(model: Any, config: SplitConfig) -> tuple[frozenset[str], list[str]]:
    """Op types to move to the host, and notes on ops the MyriadX table never probed (they stay on the device)."""
    if config.unsupported is not None:
        return frozenset(config.unsupported), []
    from .myriad_ops import describe_ops, myriad_op_status

    rejected, unknown = myriad_op_status(model)
    notes = [f"never probed on the MyriadX, left on the device (the compiler decides): {describe_ops(unknown)}"] \
        if unknown else []
    return frozenset(rejected), notes


def _cut(model: Any, config: SplitConfig, src: Path, notes: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(device output tensors, host input tensors, graph outputs the device part produces)."""
    nodes = list(model.graph.node)
    bad, more = _unsupported(model, config)
    notes.extend(more)

    def is_bad(op: str) -> bool:
        return op in bad
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for t in n.input:
            consumers.setdefault(t, []).append(i)
    graph_outputs = {o.name for o in model.graph.output}
    available = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer}
    host = {i for i, n in enumerate(nodes) if n.domain not in ("", "ai.onnx") or is_bad(n.op_type)}
    if not host:
        raise ConfigError(f"{src.name}: every op is supported by the device; compile it whole with export_blob")
    for i, n in enumerate(nodes):                                     # everything downstream goes too
        if any(producer.get(t) in host for t in n.input):
            host.add(i)
    changed = config.pull == "arithmetic"
    while changed:                                                    # pull cheap nodes feeding only the host
        changed = False
        for i in reversed(range(len(nodes))):
            n = nodes[i]
            users = [c for o in n.output for c in consumers.get(o, [])]
            if i in host or n.op_type not in _CHEAP or not users or any(o in graph_outputs for o in n.output):
                continue
            if all(c in host for c in users):
                host.add(i)
                changed = True
    needed = {t for i in host for t in nodes[i].input if t and producer.get(t) not in host}
    inits = {t.name for t in model.graph.initializer}
    graph_inputs = [i.name for i in model.graph.input if i.name not in inits]
    device_outs, from_inputs = [], set()
    for t in sorted(needed - inits):
        seen, leaves = _ancestry(t, nodes, producer, available)
        if all(nodes[i].op_type in _CHEAP for i in seen):          # e.g. x[:, 0:1]: recompute it on the host
            from_inputs |= leaves
        else:
            device_outs.append(t)
    host_ins = [t for t in graph_inputs if t in from_inputs] + device_outs
    graph_outs_device = [o for o in graph_outputs if producer.get(o) is not None and producer[o] not in host]
    return device_outs, host_ins, sorted(graph_outs_device)


def _ancestry(t: str, nodes: list[Any], producer: dict[str, int], available: set[str]) -> tuple[set[int], set[str]]:
    """Nodes computing tensor ``t`` and the graph inputs/initializers they start from."""
    seen, leaves, stack = set(), set(), [t]
    while stack:
        cur = stack.pop()
        if cur in available or cur not in producer:
            leaves.add(cur)
            continue
        i = producer[cur]
        if i not in seen:
            seen.add(i)
            stack.extend(x for x in nodes[i].input if x)
    return seen, leaves


def _samples(eval_data: Sequence[Any] | None, model: Any) -> list[dict[str, np.ndarray]]:
    inits = {t.name for t in model.graph.initializer}
    graph_inputs = [i for i in model.graph.input if i.name not in inits]
    if eval_data is None:
        rng = np.random.default_rng(0)
        shapes = [[d.dim_value or 1 for d in i.type.tensor_type.shape.dim] for i in graph_inputs]
        eval_data = [tuple((rng.random(s) * 255).astype(np.float32) for s in shapes) for _ in range(3)]
    out = []
    for item in eval_data:
        arrays = item if isinstance(item, (list, tuple)) else (item,)
        if len(arrays) != len(graph_inputs):
            raise ConfigError(f"eval_data items need {len(graph_inputs)} array(s) (one per model input), "
                              f"got {len(arrays)}")
        out.append({i.name: np.asarray(a, np.float32) for i, a in zip(graph_inputs, arrays)})
    return out


def _chain(src: Path, device: Path, host: Path, samples: list[dict[str, np.ndarray]],
           config: SplitConfig) -> tuple[Parity, float, dict[str, np.ndarray]]:
    """Run original vs device -> host on ONNX Runtime; also with FP16-rounded transfers."""
    from ..runtime import load

    def session(p: Path) -> Any:
        return load(p, runtime="onnxruntime", threads=1, providers=["CPUExecutionProvider"]).session
    orig, dev, hst = session(src), session(device), session(host)
    host_names = [i.name for i in hst.get_inputs()]
    dev_names = [o.name for o in dev.get_outputs()]
    got, ref, got16 = [], [], []
    feed: dict[str, np.ndarray] = {}
    for s in samples:
        ref.extend(orig.run(None, s))
        mids = dict(zip(dev_names, dev.run(None, s)))
        feed = {n: (mids[n] if n in mids else s[n]) for n in host_names}
        got.extend(hst.run(None, feed))
        feed16 = {n: (v.astype(np.float16).astype(np.float32) if n in mids else v) for n, v in feed.items()}
        got16.extend(hst.run(None, feed16))
    names = [o.name for o in orig.get_outputs()] * len(samples)
    parity = compare_outputs(got, ref, names, atol=config.atol, rtol=config.rtol,
                             runtime="onnxruntime (device -> host)",
                             reference="the unsplit ONNX", artifact=f"{device.name} + {host.name}",
                             hint="the split lost a tensor; report this graph")
    fp16 = max(float(np.abs(g - r).max()) for g, r in zip(got16, ref))
    return parity, fp16, feed


def _host_latency(host: Path, feed: dict[str, np.ndarray], config: SplitConfig) -> float | None:
    if config.benchmark_repeats == 0:
        return None
    from ..runtime import benchmark, load

    session = load(host, runtime="onnxruntime", threads=1)
    stats = benchmark(session, [feed[i.name] for i in session.inputs], repeats=config.benchmark_repeats, warmup=20)
    return stats.median_ms


def _hist(model: Any) -> dict[str, int]:
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))
