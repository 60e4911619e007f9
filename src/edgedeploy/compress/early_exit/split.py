"""Cut any traceable backbone into stages at chosen modules with torch.fx (skip connections included).

Every value still needed later crosses a stage boundary as an extra stage output ("carry"), so a
residual that jumps over an exit point is handed on instead of recomputed; the module at each exit
point is kept whole (an fx leaf) and its output is what the exit head reads.
"""
from __future__ import annotations

import difflib
from operator import attrgetter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from ...errors import ConfigError, ModelRunError, ShapeError
from .heads import HeadFactory


class _ExitTracer(fx.Tracer):
    """An fx tracer that keeps named modules whole and remembers which module it was tracing when it failed."""

    def __init__(self, leaves: set[str]) -> None:
        super().__init__()
        self.leaves = leaves
        self.stack: list[str] = []
        self.failed_in: list[str] | None = None

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return module_qualified_name in self.leaves or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        self.stack.append(self.path_of_module(m))
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:
                self.failed_in = list(self.stack)
            raise
        finally:
            self.stack.pop()


@dataclass(frozen=True)
class Split:
    """The traced backbone and one graph module per stage, with the values crossing each boundary.

    Stage s runs ``(*carry_in[s]) -> (*carry_out[s], logits)``; its exit head is its ``exit_head`` submodule
    (the last stage's logits are the backbone's own output).
    """

    traced: fx.GraphModule
    exits: list[str]                      # exit module names in graph (execution) order
    stages: list[fx.GraphModule]
    carry_in: list[list[str]]
    carry_out: list[list[str]]
    tap_shapes: list[tuple[int, ...]]     # shape of each exit point's value (example batch)
    num_classes: int


def _check_names(model: nn.Module, exits: Sequence[str], leaf_modules: Sequence[str]) -> None:
    modules = dict(model.named_modules())
    for kind, names in (("exit", exits), ("leaf", leaf_modules)):
        for n in names:
            if n not in modules or n == "":
                close = difflib.get_close_matches(n, [k for k in modules if k], n=3)
                hint = f"; did you mean: {', '.join(close)}" if close else "; list them with model.named_modules()"
                raise ConfigError(f"{kind} module {n!r} does not exist in {type(model).__name__}{hint}")
    if len(set(exits)) != len(exits):
        raise ConfigError(f"exits {list(exits)} name a module twice; give each exit point once")
    for a in exits:
        for b in list(exits) + list(leaf_modules):
            if a != b and a.startswith(b + "."):
                kind = "exit" if b in exits else "leaf module"
                raise ConfigError(f"exit {a!r} is inside {kind} {b!r}, which is kept whole; pick one of them")


def trace(model: nn.Module, exits: Sequence[str], leaf_modules: Sequence[str] = ()) -> fx.GraphModule:
    """Symbolically trace ``model``, keeping exit and leaf modules whole; errors name the module fx fails in."""
    _check_names(model, exits, leaf_modules)
    tracer = _ExitTracer(set(exits) | set(leaf_modules))
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # noqa: BLE001 - fx raises TraceError, TypeError, RuntimeError ... for untraceable code
        where = tracer.failed_in[-1] if tracer.failed_in else ""
        cls = type(dict(model.named_modules())[where]).__name__ if where else type(model).__name__
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        name = f"module {where!r} ({cls})" if where else f"the top-level forward of {cls}"
        fix = (f"pass leaf_modules=[{where!r}] to keep it whole (exits cannot go inside it)" if where
               else "make the forward free of data-dependent Python control flow (or wrap that part in a submodule "
                    "and pass it in leaf_modules)")
        raise ConfigError(f"torch.fx cannot trace {name}: {first}; {fix}") from exc
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def _shape_prop(gm: fx.GraphModule, example: tuple[torch.Tensor, ...]) -> None:
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(*example)
    except Exception as exc:  # noqa: BLE001 - the user's forward on their example
        shapes = ", ".join(str(tuple(t.shape)) for t in example)
        raise ModelRunError(f"{gm.__class__.__name__} failed on example inputs {shapes}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}; pass example_inputs shaped like the "
                            "real input") from exc


def _boundaries(gm: fx.GraphModule, exits: Sequence[str]) -> list[fx.Node]:
    nodes = list(gm.graph.nodes)
    found = []
    for name in exits:
        calls = [n for n in nodes if n.op == "call_module" and n.target == name]
        if not calls:
            raise ConfigError(f"exit module {name!r} is never called by {gm.__class__.__name__}.forward; "
                              "choose a module the forward pass runs")
        if len(calls) > 1:
            raise ConfigError(f"exit module {name!r} is called {len(calls)} times in one forward pass; an exit "
                              "point must run once (choose a module that is not reused)")
        meta = calls[0].meta.get("tensor_meta")
        if not hasattr(meta, "shape"):
            raise ConfigError(f"exit module {name!r} returns a {type(meta).__name__}, not one tensor; exit after "
                              "a module whose output is a single feature tensor")
        found.append(calls[0])
    order = {n: i for i, n in enumerate(nodes)}
    return sorted(found, key=order.__getitem__)


def split(model: nn.Module, exits: Sequence[str], example: tuple[torch.Tensor, ...], build_head: HeadFactory,
          leaf_modules: Sequence[str] = ()) -> Split:
    """Trace ``model`` and cut it after every exit module (graph order); the last stage ends at the model's output."""
    if not exits:
        raise ConfigError("exits is empty; name at least one module to put an exit after, e.g. exits=['layer1']")
    gm = trace(model, exits, leaf_modules)
    inputs = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    if len(inputs) != len(example):
        raise ConfigError(f"{type(model).__name__}.forward takes {len(inputs)} inputs ({', '.join(inputs)}); early "
                          "exits support models with one input tensor: wrap the model so forward(x) takes one")
    _shape_prop(gm, example)
    cuts = _boundaries(gm, exits)
    nodes = list(gm.graph.nodes)
    out_node = next(n for n in nodes if n.op == "output")
    result = out_node.args[0]
    meta = result.meta.get("tensor_meta") if isinstance(result, fx.Node) else None
    if not hasattr(meta, "shape") or len(meta.shape) != 2:
        raise ShapeError(f"{type(model).__name__} must return one (batch, classes) logits tensor for early exits; "
                         f"it returns {getattr(meta, 'shape', type(result).__name__)}")
    num_classes = int(meta.shape[1])
    pos = {n: i for i, n in enumerate(nodes)}
    stage_of = {n: sum(pos[c] < pos[n] for c in cuts) for n in nodes}
    stage_of[out_node] = len(cuts)
    live = [[n for n in nodes if n.op not in ("get_attr", "output") and stage_of[n] <= s
             and any(stage_of[u] > s for u in n.users)] for s in range(len(cuts))]
    for s, values in enumerate(live):
        for n in values:
            if not hasattr(n.meta.get("tensor_meta"), "shape"):
                raise ConfigError(f"value {n.name!r} (not a tensor) is computed before exit {cuts[s].target!r} and "
                                  "used after it, so it would cross a stage boundary; compute it after the exit "
                                  "(e.g. read x.shape where it is used) or move the exit")
    modules = dict(gm.named_modules())
    stages = []
    for s in range(len(cuts) + 1):
        g = fx.Graph()
        env: dict[fx.Node, fx.Node] = {n: g.placeholder(n.name) for n in (live[s - 1] if s else [])}
        owners: dict[str, Any] = {}

        def lookup(a: fx.Node, g: fx.Graph = g, env: dict[fx.Node, fx.Node] = env) -> fx.Node:
            if a not in env:
                if a.op != "get_attr":   # cannot happen for a topologically ordered graph; guard anyway
                    raise ModelRunError(f"stage split lost value {a.name!r}; report this model to edgedeploy")
                env[a] = g.get_attr(a.target)
            return env[a]

        for n in nodes:
            if stage_of[n] != s or n.op in ("get_attr", "output") or (s > 0 and n.op == "placeholder"):
                continue
            env[n] = g.node_copy(n, lookup)
        for n in g.nodes:
            if n.op in ("call_module", "get_attr"):
                owners[n.target] = modules[n.target] if n.op == "call_module" else attrgetter(n.target)(gm)
        if s == len(cuts):
            g.output((lookup(result),))
        else:
            owners["exit_head"] = build_head(tuple(cuts[s].meta["tensor_meta"].shape), num_classes)
            logits = g.call_module("exit_head", (env[cuts[s]],))
            g.output((*(lookup(n) for n in live[s]), logits))
        g.lint()
        stages.append(fx.GraphModule(owners, g, f"Stage{s + 1}"))
    names = [[n.name for n in lv] for lv in live]
    return Split(traced=gm, exits=[str(c.target) for c in cuts], stages=stages,
                 carry_in=[[p.name for p in nodes if p.op == "placeholder"]] + names, carry_out=names + [[]],
                 tap_shapes=[tuple(c.meta["tensor_meta"].shape) for c in cuts], num_classes=num_classes)

