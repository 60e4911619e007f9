"""From a stream of operator events to per-layer rows, peak activation memory and traffic.

Both tracers (torch dispatch and ONNX graph) emit ``OpEvent``s in execution order; this module is
the single place that turns them into a ``Profile``'s numbers, so both give the same table.

Memory model (stated in every Profile's ``conventions``):
- traffic: each layer reads its weights and the activations it consumes from outside itself, and writes
  the activations it produces that another layer (or the caller) consumes; no cross-layer fusion.
- peak activation memory: a tensor is live from the op that produces it to its last consumer (model
  inputs from the start, model outputs to the end); views share their base tensor's storage.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from .counting import OpCost
from .types import PRECISION_BYTES, LayerStats

INPUT, PARAM, BUFFER, CONST, ACT = "input", "param", "buffer", "const", "act"


@dataclass(frozen=True)
class TensorRef:
    """One tensor as an op saw it: identity of its storage, its shape and element kind."""

    key: int                   # storage identity (views share it)
    shape: tuple[int, ...]
    itemsize: int
    floating: bool
    kind: str                  # INPUT | PARAM | BUFFER | CONST | ACT
    storage_numel: int = -1    # elements of the whole storage (views); -1 = same as the tensor

    @property
    def numel(self) -> int:
        """Elements of this (possibly view) tensor."""
        n = 1
        for d in self.shape:
            n *= int(d)
        return n

    def nbytes(self, precision: str, whole_storage: bool = False) -> int:
        """Bytes at ``precision`` (floating tensors take the precision's width; others keep their own)."""
        n = self.storage_numel if whole_storage and self.storage_numel >= 0 else self.numel
        return n * (PRECISION_BYTES[precision] if self.floating else self.itemsize)


@dataclass
class OpEvent:
    """One operator call, owned by a layer row."""

    op: str
    row: str                   # layer row key
    row_op: str                # the row's op/module type
    inputs: list[TensorRef]
    outputs: list[TensorRef]
    cost: OpCost
    known: bool = True         # False when no counting rule exists for ``op``


@dataclass
class Trace:
    """What tracing one model produced (torch dispatch or ONNX graph): events plus weight totals."""

    events: list[OpEvent]
    inputs: list[TensorRef]
    output_keys: set[int]
    shapes: dict[str, tuple[list[tuple[int, ...]], list[tuple[int, ...]]]]   # row -> (input, output) shapes
    unsupported: dict[str, int]
    params: int
    weight_numel: int          # parameters + buffers (what a model file stores)
    weight_float_numel: int    # of which floating point
    weight_other_bytes: int    # non-floating buffers (e.g. num_batches_tracked), stored as is


@dataclass
class _Row:
    name: str
    op: str
    ops: list[str] = field(default_factory=list)
    macs: int = 0
    elem_ops: int = 0
    params: int = 0
    weight_keys: dict[int, TensorRef] = field(default_factory=dict)
    read: dict[int, TensorRef] = field(default_factory=dict)
    produced: dict[int, TensorRef] = field(default_factory=dict)
    in_shapes: list[tuple[int, ...]] = field(default_factory=list)
    out_shapes: list[tuple[int, ...]] = field(default_factory=list)


def build_rows(events: list[OpEvent], output_keys: set[int], precision: str,
               shapes: dict[str, tuple[list[tuple[int, ...]], list[tuple[int, ...]]]] | None = None) -> list[LayerStats]:
    """Aggregate events into layer rows (first-seen order). ``shapes`` overrides a row's in/out shapes."""
    rows: dict[str, _Row] = {}
    producer: dict[int, str] = {}
    consumers: dict[int, set[str]] = defaultdict(set)
    seen_params: set[int] = set()
    for ev in events:
        row = rows.get(ev.row) or rows.setdefault(ev.row, _Row(ev.row, ev.row_op))
        row.ops.append(ev.op)
        row.macs += ev.cost.macs
        row.elem_ops += ev.cost.elem_ops
        for t in ev.inputs:
            if t.kind in (PARAM, BUFFER, CONST):
                row.weight_keys.setdefault(t.key, t)
                if t.kind == PARAM and t.key not in seen_params:
                    seen_params.add(t.key)
                    row.params += t.numel
            elif producer.get(t.key) != ev.row:
                row.read.setdefault(t.key, t)
                consumers[t.key].add(ev.row)
        if not row.in_shapes:
            row.in_shapes = [t.shape for t in ev.inputs if t.kind in (INPUT, ACT)]
        for t in ev.outputs:
            producer[t.key] = ev.row
            row.produced[t.key] = t
        if ev.outputs:
            row.out_shapes = [t.shape for t in ev.outputs]
    out = []
    for r in rows.values():
        written = sum(t.nbytes(precision) for k, t in r.produced.items()
                      if k in output_keys or consumers.get(k, set()) - {r.name})
        ins, outs = (shapes or {}).get(r.name, (r.in_shapes, r.out_shapes))
        out.append(LayerStats(
            name=r.name, op=r.op, input_shapes=tuple(tuple(s) for s in ins),
            output_shapes=tuple(tuple(s) for s in outs), params=r.params, macs=r.macs, elem_ops=r.elem_ops,
            weight_bytes=sum(t.nbytes(precision) for t in r.weight_keys.values()),
            read_bytes=sum(t.nbytes(precision) for t in r.read.values()), write_bytes=written,
            ops=tuple(dict.fromkeys(r.ops)),
        ))
    return out


def peak_activation_bytes(events: list[OpEvent], inputs: list[TensorRef], output_keys: set[int],
                          precision: str) -> int:
    """Peak bytes of live activations over execution order (liveness analysis, not the sum)."""
    size: dict[int, int] = {}
    alloc: dict[int, int] = {}
    last: dict[int, int] = {}
    for t in inputs:
        size[t.key], alloc[t.key], last[t.key] = t.nbytes(precision, whole_storage=True), 0, 0
    for i, ev in enumerate(events, start=1):
        for t in ev.inputs:
            if t.key in alloc:
                last[t.key] = i
        for t in ev.outputs:
            if t.key not in alloc:
                size[t.key], alloc[t.key] = t.nbytes(precision, whole_storage=True), i
            last[t.key] = max(last.get(t.key, i), i)
    end = len(events) + 1
    delta: dict[int, int] = defaultdict(int)
    for k, s in size.items():
        delta[alloc[k]] += s
        delta[(end if k in output_keys else last[k]) + 1] -= s
    live = peak = 0
    for i in sorted(delta):
        live += delta[i]
        peak = max(peak, live)
    return peak
