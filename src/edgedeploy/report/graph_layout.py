"""Layered (Sugiyama-style) layout of a directed acyclic graph, in pure Python.

The four classic phases: (1) layers by longest path from the sources, with source nodes pulled down next to
their first consumer; (2) long edges split by dummy nodes, one per layer crossed; (3) crossing reduction by
barycentre sweeps down and up, keeping the order with the fewest crossings; (4) x coordinates that sit each
node over the mean of its neighbours, solved exactly per layer as an isotonic regression (pool adjacent
violators) under the minimum-separation constraint. Cost is linear in nodes + dummies per sweep.
"""
from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

Node = Hashable


@dataclass(frozen=True)
class LayoutConfig:
    """Spacing of the layout in pixels and the number of ordering sweeps."""

    layer_gap: float = 44.0         # vertical space between layers (edge labels sit there)
    node_gap: float = 22.0          # horizontal space between neighbouring boxes
    dummy_width: float = 14.0       # width a long edge takes where it crosses a layer
    margin: float = 16.0
    sweeps: int = 12                # barycentre down+up sweeps (the best order seen is kept)
    placement_rounds: int = 6       # x placement down+up rounds


@dataclass
class Layout:
    """Box centres (x, y), the canvas size, and each edge's polyline from source bottom to target top."""

    x: dict[Node, float]
    y: dict[Node, float]
    layer: dict[Node, int]
    width: float
    height: float
    edges: list[tuple[Node, Node, list[tuple[float, float]]]] = field(default_factory=list)
    crossings: int = 0


@dataclass(frozen=True)
class _Dummy:
    """A point of a long edge in one layer."""

    src: Node
    dst: Node
    step: int


def layered_layout(nodes: Sequence[Node], edges: Sequence[tuple[Node, Node]], sizes: dict[Node, tuple[float, float]],
                   config: LayoutConfig | None = None) -> Layout:
    """Lay out a DAG top to bottom; ``sizes`` maps every node to its box (width, height)."""
    cfg = config or LayoutConfig()
    order = _topological(nodes, edges)
    index = {n: i for i, n in enumerate(order)}
    forward = [(u, v) for u, v in dict.fromkeys(edges) if u != v and index[u] < index[v]]
    layer = _layers(order, forward)
    chains, ranks = _split_long_edges(order, forward, layer)
    succ: dict[Node, list[Node]] = {n: [] for r in ranks for n in r}
    pred: dict[Node, list[Node]] = {n: [] for r in ranks for n in r}
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            succ[a].append(b)
            pred[b].append(a)
    ranks, crossings = _reduce_crossings(ranks, pred, succ, cfg.sweeps)
    width = {n: (cfg.dummy_width if isinstance(n, _Dummy) else sizes[n][0]) for r in ranks for n in r}
    xs = _place(ranks, pred, succ, width, cfg)
    ys, height = _rows(ranks, sizes, cfg)
    left = min((xs[n] - width[n] / 2 for n in xs), default=0.0)
    xs = {n: x - left + cfg.margin for n, x in xs.items()}
    right = max((xs[n] + width[n] / 2 for n in xs), default=0.0)
    half = {n: sizes[n][1] / 2 if n in sizes else 0.0 for n in xs}
    paths = []
    for chain in chains:
        pts = [(xs[chain[0]], ys[chain[0]] + half[chain[0]])]
        pts += [(xs[d], ys[d]) for d in chain[1:-1]]
        pts.append((xs[chain[-1]], ys[chain[-1]] - half[chain[-1]]))
        paths.append((chain[0], chain[-1], pts))
    return Layout(x={n: xs[n] for n in order}, y={n: ys[n] for n in order}, layer={n: layer[n] for n in order},
                  width=right + cfg.margin, height=height, edges=paths, crossings=crossings)


def _topological(nodes: Sequence[Node], edges: Sequence[tuple[Node, Node]]) -> list[Node]:
    """Kahn's order, stable in the given node order; nodes left in a cycle keep their given order."""
    known = dict.fromkeys(nodes)
    indeg = {n: 0 for n in known}
    out: dict[Node, list[Node]] = {n: [] for n in known}
    for u, v in dict.fromkeys(edges):
        if u in known and v in known and u != v:
            out[u].append(v)
            indeg[v] += 1
    ready = [n for n in known if indeg[n] == 0]
    order: list[Node] = []
    pos = {n: i for i, n in enumerate(known)}
    heap = [(pos[n], i, n) for i, n in enumerate(ready)]
    heapq.heapify(heap)
    seen = set()
    while heap:
        _, _, n = heapq.heappop(heap)
        order.append(n)
        seen.add(n)
        for v in out[n]:
            indeg[v] -= 1
            if indeg[v] == 0:
                heapq.heappush(heap, (pos[v], len(order), v))
    order += [n for n in known if n not in seen]
    return order


def _layers(order: list[Node], edges: list[tuple[Node, Node]]) -> dict[Node, int]:
    """Longest-path layers; a node without inputs then moves down to just above its first consumer."""
    preds: dict[Node, list[Node]] = {n: [] for n in order}
    succs: dict[Node, list[Node]] = {n: [] for n in order}
    for u, v in edges:
        preds[v].append(u)
        succs[u].append(v)
    layer: dict[Node, int] = {}
    for n in order:
        layer[n] = max((layer[p] + 1 for p in preds[n]), default=0)
    for n in reversed(order):
        if not preds[n] and succs[n]:
            layer[n] = max(layer[n], min(layer[s] for s in succs[n]) - 1)
    return layer


def _split_long_edges(order: list[Node], edges: list[tuple[Node, Node]],
                      layer: dict[Node, int]) -> tuple[list[list[Node]], list[list[Node]]]:
    """Each edge as a chain of nodes one layer apart (dummies inserted), and the nodes of every layer."""
    ranks: list[list[Node]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for n in order:
        ranks[layer[n]].append(n)
    chains = []
    for u, v in edges:
        chain: list[Node] = [u]
        for step, lay in enumerate(range(layer[u] + 1, layer[v]), start=1):
            d = _Dummy(u, v, step)
            ranks[lay].append(d)
            chain.append(d)
        chains.append(chain + [v])
    return chains, ranks


def _reduce_crossings(ranks: list[list[Node]], pred: dict[Node, list[Node]], succ: dict[Node, list[Node]],
                      sweeps: int) -> tuple[list[list[Node]], int]:
    """Barycentre sweeps (down with predecessors, up with successors); the order with fewest crossings wins."""
    ranks = _dfs_order(ranks, succ)
    best, best_count = [list(r) for r in ranks], _crossings(ranks, succ)
    for sweep in range(sweeps):
        if best_count == 0:
            break
        down = sweep % 2 == 0
        seq = range(1, len(ranks)) if down else range(len(ranks) - 2, -1, -1)
        for i in seq:
            ref = ranks[i - 1] if down else ranks[i + 1]
            pos = {n: k for k, n in enumerate(ref)}
            nbrs = pred if down else succ
            cur = {n: k for k, n in enumerate(ranks[i])}

            def key(n: Node, pos: dict[Node, int] = pos, nbrs: dict[Node, list[Node]] = nbrs,
                    cur: dict[Node, int] = cur) -> float:
                ks = [pos[m] for m in nbrs[n] if m in pos]
                return sum(ks) / len(ks) if ks else cur[n] * len(pos) / max(len(cur), 1)

            ranks[i] = sorted(ranks[i], key=key)
        count = _crossings(ranks, succ)
        if count < best_count:
            best, best_count = [list(r) for r in ranks], count
    return best, best_count


def _dfs_order(ranks: list[list[Node]], succ: dict[Node, list[Node]]) -> list[list[Node]]:
    """Initial order: depth-first from the sources, so a branch's nodes start next to each other."""
    seen: dict[Node, int] = {}
    for root in [n for r in ranks for n in r]:
        stack = [root]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen[n] = len(seen)
            stack.extend(reversed(succ[n]))
    return [sorted(r, key=lambda n: seen[n]) for r in ranks]


def _crossings(ranks: list[list[Node]], succ: dict[Node, list[Node]]) -> int:
    """Edge crossings between adjacent layers (inversions counted with a Fenwick tree)."""
    total = 0
    for upper, lower in zip(ranks, ranks[1:]):
        pos = {n: k for k, n in enumerate(lower)}
        targets = [pos[v] for k, u in enumerate(upper) for v in sorted(succ[u], key=lambda m: pos.get(m, -1))
                   if v in pos]
        tree = [0] * (len(lower) + 1)
        for seen, t in enumerate(targets):
            i, before = t + 1, 0
            while i > 0:                         # how many earlier edges end at or left of t
                before += tree[i]
                i -= i & -i
            total += seen - before
            i = t + 1
            while i <= len(lower):
                tree[i] += 1
                i += i & -i
    return total


def _place(ranks: list[list[Node]], pred: dict[Node, list[Node]], succ: dict[Node, list[Node]],
           width: dict[Node, float], cfg: LayoutConfig) -> dict[Node, float]:
    """x of every node: alternately pulled to its predecessors' and successors' mean, order and gaps kept."""
    xs: dict[Node, float] = {}
    widest = max((sum(width[n] for n in r) + cfg.node_gap * (len(r) - 1) for r in ranks), default=0.0)
    for r in ranks:
        span = sum(width[n] for n in r) + cfg.node_gap * (len(r) - 1)
        x = (widest - span) / 2
        for n in r:
            xs[n] = x + width[n] / 2
            x += width[n] + cfg.node_gap
    for rnd in range(cfg.placement_rounds):
        for down in (True, False):
            seq = range(1, len(ranks)) if down else range(len(ranks) - 2, -1, -1)
            for i in seq:
                both = rnd == cfg.placement_rounds - 1
                xs.update(_fit_layer(ranks[i], xs, pred, succ, width, cfg.node_gap, down, both))
    _straighten(ranks, xs, width, cfg.node_gap)
    _align_chains(ranks, xs, pred, succ, width, cfg.node_gap)
    return xs


def _room(rank: list[Node], k: int, xs: dict[Node, float], width: dict[Node, float], gap: float) -> tuple[float, float]:
    """The x interval node ``rank[k]`` may move in without touching its neighbours."""
    n = rank[k]
    lo = xs[rank[k - 1]] + width[rank[k - 1]] / 2 + gap + width[n] / 2 if k > 0 else -math.inf
    hi = xs[rank[k + 1]] - width[rank[k + 1]] / 2 - gap - width[n] / 2 if k < len(rank) - 1 else math.inf
    return lo, hi


def _align_chains(ranks: list[list[Node]], xs: dict[Node, float], pred: dict[Node, list[Node]],
                  succ: dict[Node, list[Node]], width: dict[Node, float], gap: float) -> None:
    """A node whose single input comes from a node with a single output sits right under it (straight chains)."""
    for rank in ranks[1:]:
        for k, n in enumerate(rank):
            if len(pred[n]) == 1 and len(succ[pred[n][0]]) == 1:
                lo, hi = _room(rank, k, xs, width, gap)
                xs[n] = min(max(xs[pred[n][0]], lo), hi)


def _straighten(ranks: list[list[Node]], xs: dict[Node, float], width: dict[Node, float], gap: float) -> None:
    """Put every long edge's dummies on one vertical line where its neighbours leave room (a straight edge)."""
    where = {n: (i, k) for i, r in enumerate(ranks) for k, n in enumerate(r)}
    chains: dict[tuple[Node, Node], list[_Dummy]] = {}
    for n in where:
        if isinstance(n, _Dummy):
            chains.setdefault((n.src, n.dst), []).append(n)
    for chain in chains.values():
        lo, hi = -math.inf, math.inf
        for d in chain:
            a, b = _room(ranks[where[d][0]], where[d][1], xs, width, gap)
            lo, hi = max(lo, a), min(hi, b)
        if lo <= hi:
            x = min(max(sorted(xs[d] for d in chain)[len(chain) // 2], lo), hi)
            for d in chain:
                xs[d] = x


def _fit_layer(rank: list[Node], xs: dict[Node, float], pred: dict[Node, list[Node]],
               succ: dict[Node, list[Node]], width: dict[Node, float], gap: float, down: bool,
               both: bool) -> dict[Node, float]:
    """Least-squares x for one layer's nodes towards their neighbours' mean, keeping order and min gaps."""
    if not rank:
        return {}
    offsets = [0.0]
    for a, b in zip(rank, rank[1:]):
        offsets.append(offsets[-1] + (width[a] + width[b]) / 2 + gap)
    targets, weights = [], []
    for n, off in zip(rank, offsets):
        nb = (pred[n] + succ[n]) if both else (pred[n] if down else succ[n])
        if nb:
            # straight long edges first: a dummy (or an edge into one) pulls harder
            w = 4.0 if isinstance(n, _Dummy) else 1.0
            targets.append(sum(xs[m] for m in nb) / len(nb) - off)
            weights.append(w * len(nb))
        else:
            targets.append(xs[n] - off)
            weights.append(0.05)
    ys = _isotonic(targets, weights)
    return {n: y + off for n, y, off in zip(rank, ys, offsets)}


def _isotonic(values: list[float], weights: list[float]) -> list[float]:
    """Weighted least-squares non-decreasing fit (pool adjacent violators)."""
    blocks: list[list[float]] = []           # [mean, weight, count]
    for v, w in zip(values, weights):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out: list[float] = []
    for mean, _, count in blocks:
        out.extend([mean] * int(count))
    return out


def _rows(ranks: list[list[Node]], sizes: dict[Node, tuple[float, float]],
          cfg: LayoutConfig) -> tuple[dict[Node, float], float]:
    """y centre of every layer (each as tall as its tallest box) and the canvas height."""
    ys: dict[Node, float] = {}
    top = cfg.margin
    for r in ranks:
        h = max((sizes[n][1] for n in r if n in sizes), default=0.0)
        for n in r:
            ys[n] = top + h / 2
        top += h + cfg.layer_gap
    return ys, top - cfg.layer_gap + cfg.margin
