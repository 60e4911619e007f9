"""``render_graph_svg``: a static SVG of an ONNX graph, the view the tutorial opens Netron for.

Netron only serves a page (it cannot write a graph to a file offline), so we draw the graph ourselves:
boxes with op type and node name, edges labelled with the tensor shapes ONNX shape inference gives, laid out
top to bottom by ``graph_layout.layered_layout``; nodes are coloured by MACs (``metrics.profile`` on the
file, keyed by node name) or by measured time. The SVG has no script and no external reference; hovering a
box shows its full name, value and tensors (SVG ``<title>``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from ..errors import ConfigError
from .graph_layout import LayoutConfig, layered_layout

COLOR_BY = ("macs", "time")
# sequential palette (light = cheap, dark red = expensive), interpolated on a log scale
PALETTE = ("#fff7bc", "#fee391", "#fec44f", "#fe9929", "#ec7014", "#cc4c02", "#993404", "#662506")
NO_VALUE = "#eef1f5"
IO_FILL = "#dbeafe"
FONT = "DejaVu Sans, Verdana, Arial, sans-serif"
OP_H, IO_H = 38.0, 30.0
LEGEND_H = 58.0


@dataclass(frozen=True)
class GraphNode:
    """One box: an ONNX node (``kind`` "op"), a graph input or a graph output."""

    id: str
    kind: str
    label: str             # op type, or the input/output name
    name: str              # node name (the profile's row key), or the tensor name
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def node_key(node: Any, index: int) -> str:
    """The name a node's profile row carries: its name, or ``<op>_<index>`` when unnamed (as metrics.onnx_trace)."""
    return node.name or f"{node.op_type}_{index}"


def render_graph_svg(onnx_path: str | os.PathLike[str], color_by: str = "macs",
                     timings: dict[str, float] | None = None, *, max_nodes: int = 2000) -> str:
    """A static SVG of the ONNX graph at ``onnx_path``, nodes coloured by MACs or by time (ms per node name;
    measured with ONNX Runtime's profiler when ``timings`` is None), edges labelled with tensor shapes."""
    if color_by not in COLOR_BY:
        raise ConfigError(f"unknown graph colouring {color_by!r}; choose one of {', '.join(COLOR_BY)}")
    from ..onnx_utils import read_onnx

    path = Path(onnx_path)
    model = read_onnx(path)
    nodes, edges, shapes = graph_of(model)
    n_ops = sum(n.kind == "op" for n in nodes)
    if n_ops > max_nodes:
        raise ConfigError(f"{path.name} has {n_ops} nodes; the graph view draws at most {max_nodes} "
                          "(pass max_nodes= to draw more: the SVG grows with the node count)")
    if color_by == "macs":
        values, note = _macs(path)
        what = "MACs"
    else:
        note = "time per node as given"
        if timings is None:
            from ..runtime.onnxruntime_rt import node_times

            timings = node_times(path)
            note = "median kernel time on ONNX Runtime (unfused kernels, 1 thread)"
        values, what = dict(timings), "time"
    return _draw(path.name, nodes, edges, shapes, values, what, note)


def graph_of(model: Any) -> tuple[list[GraphNode], list[tuple[str, str, tuple[str, ...]]], dict[str, str]]:
    """Boxes, edges (source id, target id, tensor names) and a shape text per tensor (from shape inference)."""
    import onnx

    g = model.graph
    try:
        inferred = onnx.shape_inference.infer_shapes(_skeleton(model)).graph
    except Exception:  # noqa: BLE001 - a graph shape inference cannot read still draws, without shapes
        inferred = g
    shapes = {vi.name: _shape_text(vi) for vi in [*inferred.input, *inferred.value_info, *inferred.output]}
    inits = {i.name for i in g.initializer}
    consts = {o for n in g.node if n.op_type == "Constant" for o in n.output}
    producer: dict[str, str] = {}
    nodes: list[GraphNode] = []
    for vi in g.input:
        if vi.name not in inits:
            nodes.append(GraphNode(f"in:{vi.name}", "input", vi.name, vi.name, (), (vi.name,)))
            producer[vi.name] = nodes[-1].id
    for i, n in enumerate(g.node):
        if n.op_type == "Constant":
            continue
        key = node_key(n, i)
        nodes.append(GraphNode(f"n:{key}:{i}", "op", n.op_type, key, tuple(n.input), tuple(n.output)))
        for o in n.output:
            producer[o] = nodes[-1].id
    for vi in g.output:
        nodes.append(GraphNode(f"out:{vi.name}", "output", vi.name, vi.name, (vi.name,), ()))
    edges: dict[tuple[str, str], list[str]] = {}
    for node in nodes:
        for t in node.inputs:
            if t and t in producer and t not in inits and t not in consts:
                edges.setdefault((producer[t], node.id), []).append(t)
    return nodes, [(u, v, tuple(ts)) for (u, v), ts in edges.items()], shapes


def _skeleton(model: Any) -> Any:
    """The model without its large weights (declared as inputs of the same shape): shape inference then
    serializes kilobytes instead of the whole file (ResNet-50: 1.1 s -> 0.05 s)."""
    from onnx import helper

    g = model.graph
    declared = {vi.name for vi in g.input}
    small, typed = [], []
    for init in g.initializer:
        n = 1
        for d in init.dims:
            n *= d
        if n <= 64:
            small.append(init)           # shape tensors (Reshape, Slice ...) keep their values
        elif init.name not in declared:
            typed.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    graph = helper.make_graph(list(g.node), g.name, list(g.input) + typed, list(g.output), small,
                              value_info=list(g.value_info))
    skel = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    skel.functions.extend(model.functions)
    return skel


def _shape_text(vi: Any) -> str:
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return ""
    return "×".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim)


def _macs(path: Path) -> tuple[dict[str, float], str]:
    """MACs per node name from the profiler; an ONNX it cannot count (dynamic dims) is drawn uncoloured."""
    from ..errors import EdgeDeployError
    from ..metrics.profile import profile

    try:
        prof = profile(path)
    except EdgeDeployError as exc:
        return {}, f"MACs not counted: {str(exc)[:120]}"
    return {r.name: float(r.macs) for r in prof.layers}, f"total {_si(prof.macs)} MACs (edgedeploy profile)"


def _si(v: float) -> str:
    for div, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g} {p}"
    return f"{v:.3g}"


def _value_text(v: float | None, what: str) -> str:
    if v is None or v <= 0:
        return ""
    return f"{_si(v).replace(' ', '')} MACs" if what == "MACs" else _ms(v)


def _ms(v: float) -> str:
    return f"{v:.3g} ms" if v >= 1.0 else f"{v * 1e3:.3g} µs"


def _text_width(text: str, size: float, bold: bool = False) -> float:
    return len(text) * size * (0.66 if bold else 0.6)


def _fit(text: str, size: float, room: float) -> str:
    """``text`` shortened in the middle (…) to fit ``room`` pixels."""
    n = int(room / (size * 0.6))
    return text if len(text) <= n else text[: max(n // 2 - 1, 1)] + "…" + text[-max(n - n // 2, 1):]


def _color(v: float | None, lo: float, hi: float) -> str:
    """Fill for value ``v`` on a log scale between ``lo`` and ``hi`` (grey when there is no value)."""
    if v is None or v <= 0 or hi <= 0:
        return NO_VALUE
    t = 0.0 if hi <= lo else (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    t = min(max(t, 0.0), 1.0) * (len(PALETTE) - 1)
    i = min(int(t), len(PALETTE) - 2)
    a, b = PALETTE[i], PALETTE[i + 1]
    mix = [round(int(a[k:k + 2], 16) * (1 - (t - i)) + int(b[k:k + 2], 16) * (t - i)) for k in (1, 3, 5)]
    return "#" + "".join(f"{c:02x}" for c in mix)


def _ink(fill: str) -> str:
    r, g, b = (int(fill[k:k + 2], 16) / 255 for k in (1, 3, 5))
    return "#ffffff" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "#1f2937"


def _draw(title: str, nodes: list[GraphNode], edges: list[tuple[str, str, tuple[str, ...]]],
          shapes: dict[str, str], values: dict[str, float], what: str, note: str) -> str:
    """Lay the graph out and write the SVG text."""
    vals = {n.id: values.get(n.name) for n in nodes if n.kind == "op"}
    positive = [v for v in vals.values() if v is not None and v > 0]
    lo, hi = (min(positive), max(positive)) if positive else (0.0, 0.0)
    sizes, lines = {}, {}
    for n in nodes:
        if n.kind == "op":
            first = n.label + ("  " + _value_text(vals[n.id], what) if _value_text(vals[n.id], what) else "")
            w = max(_text_width(first, 12, True), _text_width(n.name, 10)) + 18
            sizes[n.id] = (min(max(w, 92.0), 230.0), OP_H)
            lines[n.id] = first
        else:
            text = f"{n.label}  {shapes.get(n.name, '')}".strip()
            sizes[n.id] = (min(max(_text_width(text, 11) + 24, 92.0), 260.0), IO_H)
            lines[n.id] = text
    lay = layered_layout([n.id for n in nodes], [(u, v) for u, v, _ in edges], sizes, LayoutConfig())
    width = max(lay.width, 420.0)
    height = lay.height + LEGEND_H
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="edgedeploy-graph" width="{width:.0f}" '
           f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" font-family={quoteattr(FONT)}>',
           "<defs><marker id=\"edg-arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" "
           "markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#64748b\"/>"
           "</marker>", _gradient(), "</defs>",
           f'<rect width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>']
    out += _legend(title, len([n for n in nodes if n.kind == "op"]), what, note, lo, hi)
    out.append(f'<g transform="translate(0,{LEGEND_H:.0f})">')
    out += _edges(lay, edges, shapes)
    by_id = {n.id: n for n in nodes}
    for nid in lay.x:
        out.append(_box(by_id[nid], lay.x[nid], lay.y[nid], sizes[nid], lines[nid], vals.get(nid), lo, hi, what,
                        shapes))
    out.append("</g></svg>")
    return "\n".join(out)


def _gradient() -> str:
    stops = "".join(f'<stop offset="{i / (len(PALETTE) - 1):.3f}" stop-color="{c}"/>' for i, c in enumerate(PALETTE))
    return f'<linearGradient id="edg-scale" x1="0" x2="1" y1="0" y2="0">{stops}</linearGradient>'


def _legend(title: str, n_ops: int, what: str, note: str, lo: float, hi: float) -> list[str]:
    fmt = _si if what == "MACs" else _ms
    out = [f'<text x="16" y="20" font-size="13" font-weight="bold" fill="#111827">{escape(title)} · {n_ops} nodes'
           f'</text>',
           f'<text x="16" y="36" font-size="10.5" fill="#4b5563">colour: {escape(what)}, log scale · '
           f'{escape(note)}</text>']
    if hi > 0:
        out += ['<rect x="16" y="42" width="160" height="9" fill="url(#edg-scale)" stroke="#9ca3af" '
                'stroke-width="0.5"/>',
                f'<text x="16" y="57" font-size="9" fill="#4b5563">{escape(fmt(lo))}</text>',
                f'<text x="176" y="57" font-size="9" fill="#4b5563" text-anchor="end">{escape(fmt(hi))}</text>']
    out += [f'<rect x="190" y="42" width="14" height="9" fill="{NO_VALUE}" stroke="#9ca3af" stroke-width="0.5"/>',
            f'<text x="208" y="50.5" font-size="9" fill="#4b5563">no {escape(what.split()[0])}</text>']
    return out


def _edges(lay: Any, edges: list[tuple[str, str, tuple[str, ...]]], shapes: dict[str, str]) -> list[str]:
    """Curved edges with arrowheads; each tensor's shape written once, beside its straightest edge."""
    tensors = {(u, v): ts for u, v, ts in edges}
    out, labelled = [], set()
    ranked = sorted(lay.edges, key=lambda e: abs(e[2][1][0] - e[2][0][0]))
    for u, v, pts in lay.edges:
        d = f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            my = (y1 - y0) / 2
            d += f" C{x0:.1f},{y0 + my:.1f} {x1:.1f},{y1 - my:.1f} {x1:.1f},{y1:.1f}"
        out.append(f'<path d="{d}" fill="none" stroke="#94a3b8" stroke-width="1.2" marker-end="url(#edg-arrow)"/>')
    for u, v, pts in ranked:
        text = ", ".join(shapes.get(t, "") for t in tensors[(u, v)] if shapes.get(t))
        key = tensors[(u, v)]
        if not text or key in labelled:
            continue
        labelled.add(key)
        (x0, y0), (x1, y1) = pts[0], pts[1]
        out.append(f'<text x="{(x0 + x1) / 2 + 5:.1f}" y="{(y0 + y1) / 2 + 3:.1f}" font-size="9" fill="#475569" '
                   f'stroke="#ffffff" stroke-width="3" paint-order="stroke">{escape(text)}</text>')
    return out


def _box(n: GraphNode, x: float, y: float, size: tuple[float, float], first: str, v: float | None, lo: float,
         hi: float, what: str, shapes: dict[str, str]) -> str:
    w, h = size
    tip = [f"{n.label} {n.name}" if n.kind == "op" else f"{n.kind} {n.name}"]
    if n.kind == "op":
        tip.append(f"{what}: {_value_text(v, what) or '0'}" if v is not None else f"{what}: not counted")
        tip += [f"in  {t} {shapes.get(t, '')}" for t in n.inputs if t]
        tip += [f"out {t} {shapes.get(t, '')}" for t in n.outputs if t]
        fill = _color(v, lo, hi)
        ink = _ink(fill)
        body = (f'<rect x="{x - w / 2:.1f}" y="{y - h / 2:.1f}" width="{w:.1f}" height="{h:.1f}" rx="4" '
                f'fill="{fill}" stroke="#475569" stroke-width="0.8"/>'
                f'<text x="{x:.1f}" y="{y - 3:.1f}" font-size="12" text-anchor="middle" fill="{ink}">'
                f'<tspan font-weight="bold">{escape(n.label)}</tspan>'
                f'{escape(first[len(n.label):])}</text>'
                f'<text x="{x:.1f}" y="{y + 12:.1f}" font-size="10" text-anchor="middle" fill="{ink}" '
                f'fill-opacity="0.8">{escape(_fit(n.name, 10, w - 10))}</text>')
    else:
        body = (f'<rect x="{x - w / 2:.1f}" y="{y - h / 2:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{h / 2:.1f}" '
                f'fill="{IO_FILL}" stroke="#3b82f6" stroke-width="0.8"/>'
                f'<text x="{x:.1f}" y="{y + 4:.1f}" font-size="11" text-anchor="middle" fill="#1e3a8a">'
                f'{escape(_fit(first, 11, w - 12))}</text>')
    return f'<g class="node"><title>{escape(chr(10).join(tip))}</title>{body}</g>'
