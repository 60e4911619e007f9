"""Layer pruning: remove whole residual branches (y = skip + f(x) becomes y = skip) from a torch.fx graph.

A removable block is the part of the graph feeding only one operand of a shape-preserving add and
holding parameters; removing it keeps every shape, so the model still runs and exports.
"""
from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from ...errors import ConfigError
from ._cost import as_tuple
from .base import Granularity, PruneContext, is_ignored, register_granularity
from .config import PruneConfig
from .report import LayerChange

_ADDS = {operator.add, operator.iadd, torch.add}


@dataclass
class _Block:
    name: str
    add: fx.Node
    skip: fx.Node
    branch: fx.Node
    nodes: set[fx.Node]
    params: int


def _is_add(n: fx.Node) -> bool:
    return ((n.op == "call_function" and n.target in _ADDS) or (n.op == "call_method" and n.target in ("add", "add_"))) \
        and len(n.args) == 2 and all(isinstance(a, fx.Node) for a in n.args) and not n.kwargs


def _exclusive(gm: fx.GraphModule, add: fx.Node, skip: fx.Node) -> set[fx.Node]:
    """Nodes that become dead when ``add`` is replaced by ``skip``."""
    removed = {add}
    for n in reversed(list(gm.graph.nodes)):
        if n in removed or n is skip or n.op in ("placeholder", "output") or not n.users:
            continue
        if all(u in removed for u in n.users):
            removed.add(n)
    return removed - {add}


def _params(gm: fx.GraphModule, nodes: set[fx.Node]) -> int:
    total = 0
    for n in nodes:
        if n.op == "call_module":
            total += sum(p.numel() for p in gm.get_submodule(n.target).parameters())
        elif n.op == "get_attr":
            obj = getattr(gm, str(n.target), None)
            total += obj.numel() if isinstance(obj, torch.Tensor) else 0
    return total


def _name(nodes: set[fx.Node], fallback: str) -> str:
    paths = [str(n.target).split(".") for n in nodes if n.op == "call_module"]
    if not paths:
        return fallback
    prefix = []
    for parts in zip(*paths):
        if len(set(parts)) != 1:
            break
        prefix.append(parts[0])
    return ".".join(prefix) or fallback


def find_blocks(gm: fx.GraphModule, ignored: list[nn.Module]) -> list[_Block]:
    """Every removable residual branch of the traced graph (shapes must already be propagated)."""
    blocks = []
    for n in gm.graph.nodes:
        if not _is_add(n):
            continue
        shapes = [getattr(a.meta.get("tensor_meta"), "shape", None) for a in (*n.args, n)]
        if None in shapes or len({tuple(s) for s in shapes}) != 1:
            continue
        best = None
        for skip, branch in ((n.args[0], n.args[1]), (n.args[1], n.args[0])):
            nodes = _exclusive(gm, n, skip)
            params = _params(gm, nodes)
            if params and (best is None or params > best.params):
                best = _Block(_name(nodes, f"add:{n.name}"), n, skip, branch, nodes, params)
        if best is None:
            continue
        mods = [gm.get_submodule(x.target) for x in best.nodes if x.op == "call_module"]
        if not any(is_ignored(m, ignored) for m in mods):
            blocks.append(best)
    return blocks


def _remove(gm: fx.GraphModule, block: _Block) -> None:
    block.add.replace_all_uses_with(block.skip)
    gm.graph.erase_node(block.add)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()


def _contribution(gm: fx.GraphModule, blocks: list[_Block], inputs: tuple[Any, ...], p: int) -> dict[str, float]:
    """||branch|| / ||skip|| per block on real inputs: a branch adding little to its skip matters little."""
    wanted = {x for b in blocks for x in (b.branch, b.skip)}
    values: dict[fx.Node, torch.Tensor] = {}

    class _Rec(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            out = super().run_node(n)
            if n in wanted:
                values[n] = out.detach()
            return out

    with torch.no_grad():
        _Rec(gm).run(*inputs)
    return {b.name: float(values[b.branch].norm(p)) / (float(values[b.skip].norm(p)) + 1e-12) for b in blocks}


@register_granularity("layer")
class LayerPruning(Granularity):
    """Remove the least important residual branches (globally, or the same fraction in every stage)."""

    def __init__(self, model: nn.Module, config: PruneConfig, ctx: PruneContext) -> None:
        super().__init__(model, config, ctx)
        try:
            self.gm = fx.symbolic_trace(model)
        except Exception as exc:  # noqa: BLE001 - tracing failures come from user code
            raise ConfigError(f"layer pruning needs a torch.fx-traceable model; tracing {type(model).__name__} "
                              f"failed: {exc}; use granularity 'channel' or 'element' instead") from exc
        self.gm.train(model.training)
        self.model = self.gm                      # fine-tune callbacks see the graph being cut
        self.inputs = as_tuple(ctx.example_inputs)
        blocks = self._blocks()
        if not blocks:
            raise ConfigError(f"{type(model).__name__} has no removable block: layer pruning removes residual "
                              "branches (y = x + f(x)) and found none outside the ignored layers; "
                              "use granularity 'channel' instead")
        names = [b.name for b in blocks]
        for t in config.targets:
            if t not in names:
                raise ConfigError(f"layer {t!r} cannot be removed: it is not a residual branch whose removal keeps "
                                  f"the shapes; removable blocks: {', '.join(names)}")
        self.initial = {b.name: b.params for b in blocks if not config.targets or b.name in config.targets}
        self.quota = self._quota(list(self.initial))
        self.removed: list[str] = []

    def _blocks(self) -> list[_Block]:
        from torch.fx.passes.shape_prop import ShapeProp

        with torch.no_grad():
            ShapeProp(self.gm).propagate(*self.inputs)
        return find_blocks(self.gm, self.ctx.ignored)

    def _stage(self, name: str) -> str:
        return name.rsplit(".", 1)[0] if "." in name else ""

    def _quota(self, names: list[str]) -> dict[str, int]:
        """How many blocks to remove in total (global, key "") or per stage (local)."""
        def n_of(k: int) -> int:
            return math.floor(self.config.amount * k + 0.5)
        if self.config.scope == "global":
            return {"": n_of(len(names))}
        stages: dict[str, int] = {}
        for n in names:
            stages[self._stage(n)] = stages.get(self._stage(n), 0) + 1
        return {s: n_of(k) for s, k in stages.items()}

    def _scores(self, blocks: list[_Block]) -> dict[str, float]:
        c = self.config.criterion
        if c == "random":
            g = torch.Generator().manual_seed(len(self.removed))
            return {b.name: float(torch.rand(1, generator=g)) for b in blocks}
        if c == "measured":
            if self.ctx.eval_fn is None:
                raise ConfigError("criterion 'measured' needs eval_fn=callable(model) -> metric (higher is better)")
            scores = {}
            for b in blocks:
                trial = copy.deepcopy(self.gm)
                twin = next(x for x in find_blocks(trial, []) if x.name == b.name)
                _remove(trial, twin)
                with torch.no_grad():
                    scores[b.name] = -float(self.ctx.eval_fn(trial.eval()))   # a small drop => low importance
            return scores
        x = self.ctx.data and next(iter(self.ctx.data), None)
        inputs = (x[0],) if isinstance(x, (tuple, list)) else self.inputs
        return _contribution(self.gm, blocks, inputs, 1 if c == "l1" else 2)

    def step(self, fraction: float) -> None:
        blocks = [b for b in self._blocks() if b.name in self.initial and b.name not in self.removed]
        scores = self._scores(blocks)
        for stage, total in self.quota.items():
            target = math.floor(total * fraction + 1e-9)
            done = sum(1 for r in self.removed if stage == "" or self._stage(r) == stage)
            pool = sorted((b for b in blocks if stage == "" or self._stage(b.name) == stage),
                          key=lambda b: scores[b.name])
            for b in pool[:max(0, target - done)]:
                self._blocks_remove(b.name)

    def _blocks_remove(self, name: str) -> None:
        fresh = next((b for b in self._blocks() if b.name == name), None)
        if fresh is not None:
            _remove(self.gm, fresh)
            self.removed.append(name)

    def finish(self) -> nn.Module:
        return self.gm

    def changes(self) -> tuple[list[LayerChange], list[str], list[str]]:
        rows = [LayerChange(n, "block", "block", (p,), (0 if n in self.removed else p,)) for n, p in self.initial.items()]
        notes = ["removed residual branches are cut out of the graph (y = x + f(x) becomes y = x); "
                 "the result is a torch.fx GraphModule that runs and exports like the original"]
        if self.config.amount > 0 and not self.removed:
            notes.append(f"amount {self.config.amount} of {len(self.initial)} blocks rounds to 0: nothing removed")
        return rows, list(self.removed), notes
