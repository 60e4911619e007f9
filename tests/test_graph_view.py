"""The graph view: the layered layout on small DAGs with known answers, and the SVG of real ONNX exports (the
digits CNN trained on sklearn's digits; ResNet-50 from the zoo, 122 nodes) coloured by profiled MACs and by
ONNX Runtime's measured per-node time."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from edgedeploy.report.graph_layout import LayoutConfig, layered_layout
from edgedeploy.report.graph_svg import PALETTE, render_graph_svg

SVG = "{http://www.w3.org/2000/svg}"


def _sizes(nodes, w=60.0, h=30.0):
    return {n: (w, h) for n in nodes}


def _no_overlap(lay, sizes, gap):
    rows: dict[int, list[str]] = {}
    for n, layer in lay.layer.items():
        rows.setdefault(layer, []).append(n)
    for row in rows.values():
        row.sort(key=lambda n: lay.x[n])
        for a, b in zip(row, row[1:]):
            assert lay.x[b] - lay.x[a] >= (sizes[a][0] + sizes[b][0]) / 2 + gap - 1e-6, (a, b)


def test_layers_follow_the_edges_and_sources_sit_above_their_consumer():
    nodes = ["in", "a", "b", "c", "d", "w"]
    edges = [("in", "a"), ("a", "b"), ("b", "c"), ("c", "d"), ("w", "c")]     # w: a side input used late
    lay = layered_layout(nodes, edges, _sizes(nodes))
    assert [lay.layer[n] for n in ("in", "a", "b", "c", "d")] == [0, 1, 2, 3, 4]
    assert lay.layer["w"] == 2                                    # pulled down next to c, not left at the top
    assert all(lay.y[u] < lay.y[v] for u, v in edges)
    for u, v, pts in lay.edges:                                   # polylines run downwards, one point per layer
        assert len(pts) == lay.layer[v] - lay.layer[u] + 1
        assert all(p[1] < q[1] for p, q in zip(pts, pts[1:]))
    assert lay.x["a"] == lay.x["b"]                                # a straight chain is drawn straight


def test_barycentre_ordering_reaches_the_fewest_crossings():
    import itertools

    from edgedeploy.report import graph_layout as gl

    rows = [["n0_0", "n0_1", "n0_2"], ["n1_0", "n1_1", "n1_2", "n1_3"], ["n2_0", "n2_1", "n2_2", "n2_3"]]
    edges = [("n0_1", "n1_0"), ("n0_0", "n1_1"), ("n0_2", "n1_1"), ("n0_2", "n1_2"), ("n0_2", "n1_3"),
             ("n0_1", "n1_3"), ("n1_0", "n2_0"), ("n1_1", "n2_0"), ("n1_1", "n2_1"), ("n1_2", "n2_1"),
             ("n1_0", "n2_2"), ("n1_3", "n2_2"), ("n1_0", "n2_3"), ("n1_1", "n2_3")]
    succ = {n: [v for u, v in edges if u == n] for r in rows for n in r}
    nodes = [n for r in rows for n in r]
    lay = layered_layout(nodes, edges, _sizes(nodes))
    fewest = min(gl._crossings([list(a), list(b), list(c)], succ) for a in itertools.permutations(rows[0])
                 for b in itertools.permutations(rows[1]) for c in itertools.permutations(rows[2]))
    assert gl._crossings(gl._dfs_order(rows, succ), succ) == 8     # where the sweeps start
    assert lay.crossings == fewest == 3                            # brute force over all 3456 orders agrees
    placed = [sorted(r, key=lambda n: lay.x[n]) for r in rows]
    assert gl._crossings(placed, succ) == 3                         # the drawn order is the one counted
    _no_overlap(lay, _sizes(nodes), LayoutConfig().node_gap)
    # K3,3 on two layers: every order gives C(3,2)^2 = 9 crossings (the Fenwick counter must find them all)
    k33 = [f"u{i}" for i in range(3)] + [f"v{i}" for i in range(3)]
    assert layered_layout(k33, [(f"u{i}", f"v{j}") for i in range(3) for j in range(3)], _sizes(k33)).crossings == 9


def test_long_edges_go_straight_around_the_nodes_they_pass():
    nodes = ["x", "p1", "p2", "p3", "p4", "add"]
    edges = [("x", "p1"), ("p1", "p2"), ("p2", "p3"), ("p3", "p4"), ("p4", "add"), ("x", "add")]   # a residual
    sizes = _sizes(nodes, 120.0)
    lay = layered_layout(nodes, edges, sizes)
    skip = next(pts for u, v, pts in lay.edges if (u, v) == ("x", "add"))
    inner = [p[0] for p in skip[1:-1]]
    assert len(inner) == 4 and max(inner) - min(inner) < 1e-6      # one vertical line
    assert all(abs(x - lay.x["p2"]) >= 60 + LayoutConfig().node_gap for x in inner)   # beside the chain, not through


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory) -> Path:
    from edgedeploy.export.onnx import OnnxConfig, export_onnx
    from edgedeploy.zoo.digits import digits_cnn

    torch.set_num_threads(1)
    model = digits_cnn(pretrained=True, epochs=2)
    res = export_onnx(model, (torch.zeros(1, 1, 16, 16),), OnnxConfig(exporter="torchscript", opset=17),
                      out=tmp_path_factory.mktemp("digits"), name="digits")
    return res.path


def _boxes(svg: str) -> list[dict]:
    root = ET.fromstring(svg)
    out = []
    for g in root.iter(f"{SVG}g"):
        if g.get("class") != "node":
            continue
        rect = g.find(f"{SVG}rect")
        texts = ["".join(t.itertext()) for t in g.findall(f"{SVG}text")]
        out.append({"title": g.find(f"{SVG}title").text, "fill": rect.get("fill"), "texts": texts,
                    **{k: float(rect.get(k)) for k in ("x", "y", "width", "height")}})
    return out


def test_digits_graph_shows_every_node_its_macs_and_the_inferred_shapes(digits_onnx):
    import onnx

    from edgedeploy.metrics.profile import profile

    model = onnx.load(str(digits_onnx))
    svg = render_graph_svg(digits_onnx)
    boxes = _boxes(svg)
    ops = [b for b in boxes if b["title"].split()[0] not in ("input", "output")]
    assert sorted(b["texts"][0].split()[0] for b in ops) == sorted(n.op_type for n in model.graph.node)
    assert {b["texts"][1] for b in ops} == {n.name for n in model.graph.node}
    macs = {r.name: r.macs for r in profile(digits_onnx).layers}
    heaviest = max(macs, key=macs.get)
    box = next(b for b in ops if b["texts"][1] == heaviest)
    assert box["fill"] == PALETTE[-1] and f"{macs[heaviest] / 1e3:.3g}k MACs" in box["texts"][0]
    relu = next(b for b in ops if b["texts"][0] == "Relu")
    assert relu["fill"] == "#eef1f5"                               # 0 MACs: uncoloured
    # shapes from ONNX shape inference on the edges: the stem output and the residual stage
    labels = re.findall(r'paint-order="stroke">([^<]+)</text>', svg)
    assert "1×16×16×16" in labels and "1×32×8×8" in labels and "1×10" in labels
    assert svg.startswith("<svg") and "<script" not in svg and not re.search(r"(?:src|href)=\"http", svg)


def test_graph_coloured_by_given_and_by_measured_time(digits_onnx):
    import onnx

    from edgedeploy.report import node_times

    names = [n.name for n in onnx.load(str(digits_onnx)).graph.node]
    given = {name: 0.01 * (i + 1) for i, name in enumerate(names)}
    ops = [b for b in _boxes(render_graph_svg(digits_onnx, "time", timings=given))
           if b["title"].split()[0] not in ("input", "output")]
    slowest = next(b for b in ops if b["texts"][1] == names[-1])
    fastest = next(b for b in ops if b["texts"][1] == names[0])
    assert slowest["fill"] == PALETTE[-1] and fastest["fill"] == PALETTE[0]
    assert f"{given[names[-1]] * 1e3:.3g} µs" in slowest["texts"][0]
    measured = node_times(digits_onnx, repeats=5, warmup=2)
    assert set(measured) == set(names) and all(v > 0 for v in measured.values())
    conv = max((n for n in names if "Conv" in n), key=measured.get)
    assert measured[conv] > min(measured.values())                 # a conv costs more than the cheapest node


def test_resnet50_graph_stays_readable_and_bounded(tmp_path):
    from edgedeploy.export.onnx import OnnxConfig, export_onnx
    from edgedeploy.zoo.reference import ResNet50

    torch.manual_seed(0)
    res = export_onnx(ResNet50().eval(), (torch.randn(1, 3, 64, 64),), OnnxConfig(exporter="torchscript", opset=17),
                      out=tmp_path, name="resnet50")
    svg = render_graph_svg(res.path)
    boxes = _boxes(svg)
    assert len(boxes) == 122 + 2
    root = ET.fromstring(svg)
    width, height = float(root.get("width")), float(root.get("height"))
    assert width < 1000 and height < 124 * 85                      # one column of blocks, residuals beside it
    assert len(svg) < 300_000
    for i, a in enumerate(boxes):                                  # no two boxes overlap
        for b in boxes[i + 1:]:
            assert (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"] or
                    a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"]), (a["title"], b["title"])
    sizes = {float(t.get("font-size")) for g in root.iter(f"{SVG}g") if g.get("class") == "node"
             for t in g.iter(f"{SVG}text")}
    assert sizes == {10.0, 11.0, 12.0}                             # names, inputs/outputs, op types: never shrunk


def test_graph_errors_name_the_fix(digits_onnx, tmp_path):
    from edgedeploy.errors import ConfigError, ModelLoadError

    with pytest.raises(ConfigError, match="unknown graph colouring 'flops'; choose one of macs, time"):
        render_graph_svg(digits_onnx, "flops")
    with pytest.raises(ModelLoadError, match="does not exist"):
        render_graph_svg(tmp_path / "none.onnx")
    with pytest.raises(ConfigError, match=r"has 14 nodes; the graph view draws at most 5 \(pass max_nodes="):
        render_graph_svg(digits_onnx, max_nodes=5)
