"""Transformer pruning on Hugging Face BERT-style encoders and ViTs: attention heads, FFN width, whole layers.

Granularities (``PruneConfig(granularity=...)``):
* ``head``: remove attention heads (Q/K/V rows and output-projection columns of each head);
* ``ffn``: remove FFN (intermediate) units (up-projection rows, down-projection columns);
* ``transformer-layer``: remove whole layers from the encoder stack (``amount`` = fraction of layers).
``scope="local"`` removes ``amount`` of every layer's heads/units (``layer_amounts`` overrides per layer),
``scope="global"`` ranks them across layers (each layer keeps at least one head/unit and at most
``max_amount`` is removed from one layer). Ranking: see ``hf_scores`` (l2, l1, taylor, random).

Each pruned layer's output projection is refit by ridge least squares on the scoring batches, so the kept
heads / units absorb what the removed ones contributed (``hf.refit``). The result is a new model object of a
Hugging Face class rebuilt from an updated config (``hf.rebuild``; also with ``inplace=True``: use
``result.model``): it saves with ``save_pretrained`` (``hf.save_hf_folder`` adds a parity-checked ONNX) and
reloads with ``AutoModel.from_pretrained`` -- stock when every layer is alike, otherwise with
``trust_remote_code=True`` (transformers 5.x has no per-layer head counts or widths).
``hf.hidden_state_pairs(result.model)`` pairs its layers with the unpruned ones for ``DistillConfig(hidden_pairs=...)``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError
from . import hf
from .base import Granularity, PruneContext, is_ignored, register_granularity
from .config import PruneConfig, resolve_names
from .hf_scores import Measured, feeds, measure
from .report import LayerChange


def _tensor_shapes(out: Any) -> list[tuple[int, ...]]:
    """Shapes of every tensor in a model output (tensor, tuple, dict or Hugging Face ModelOutput)."""
    if isinstance(out, torch.Tensor):
        return [tuple(out.shape)]
    items = out.values() if isinstance(out, Mapping) else out if isinstance(out, (tuple, list)) else ()
    return [s for v in items for s in _tensor_shapes(v)]


class _TransformerPruning(Granularity):
    """Shared set-up and finish: eligibility (targets / ignored), provenance, rebuild, output-shape check."""

    kind = ""

    def __init__(self, model: nn.Module, config: PruneConfig, ctx: PruneContext) -> None:
        super().__init__(model, config, ctx)
        hf.family(model)                        # a clear error for unsupported models, before any work
        self.prov = hf.Provenance.read(model)
        self.feeds = feeds(model, ctx.data, ctx.example_inputs)
        with torch.no_grad():
            self.shapes = _tensor_shapes(self.feeds[0].run(model.eval()))
        targets = resolve_names(model, config.targets, "target")
        amounts = dict(config.layer_amounts or {})
        amount_mods = list(zip(resolve_names(model, tuple(amounts), "layer_amounts"), amounts.values()))
        self.names = {id(b.layer): b.name for b in hf.blocks(model)}     # names at the start (layers renumber)
        self.before = {id(b.layer): self._size(b) for b in hf.blocks(model)}
        self.params = {id(b.layer): sum(p.numel() for p in b.layer.parameters()) for b in hf.blocks(model)}
        self.eligible: set[int] = set()          # id() of the layer modules that may be pruned
        self.amount: dict[int, float] = {}
        for b in hf.blocks(model):
            parts = self._parts(b)
            if any(is_ignored(p, ctx.ignored) for p in parts) or \
                    (targets and not any(is_ignored(p, targets) for p in parts)):
                continue
            self.eligible.add(id(b.layer))
            own = [float(a) for m, a in amount_mods if any(is_ignored(p, [m]) for p in parts)]
            self.amount[id(b.layer)] = own[0] if own else float(config.amount)
        if not self.eligible:
            raise ConfigError(f"no {self.kind} of {type(model).__name__} is left to prune: every layer is ignored or "
                              "outside `targets`; remove names from `ignored` / `targets`")
        self.representation = ""

    def _parts(self, b: hf.Block) -> tuple[nn.Module, ...]:
        """The modules this granularity cuts in a layer (ignoring any of them protects the layer)."""
        return (*b.qkv, b.attn_out) if self.kind == "head" else (b.ffn_in, b.ffn_out) if self.kind == "ffn" \
            else (b.layer,)

    def _size(self, b: hf.Block) -> int:
        return b.heads if self.kind == "head" else b.width if self.kind == "ffn" else 1

    def _measure(self) -> Measured:
        return measure(self.model, self.kind, self.feeds, self.config.criterion, self.ctx.loss_fn,
                       seed=sum(self._size(b) for b in hf.blocks(self.model)))

    def finish(self) -> nn.Module:
        self.prov.write(self.model)
        new, self.representation = hf.rebuild(self.model)
        with torch.no_grad():
            after = _tensor_shapes(self.feeds[0].run(new.eval()))
        if after != self.shapes:
            raise ConfigError(f"{self.kind} pruning changed the output shapes {self.shapes} -> {after}; "
                              "please report this")
        self.model = new
        return new

    def _notes(self) -> list[str]:
        how = {"stock": "stock config (loads with AutoModel.from_pretrained(folder))",
               "per-layer": "per-layer config + modeling_pruned.py (loads with "
                            "AutoModel.from_pretrained(folder, trust_remote_code=True))"}
        notes = [f"ranked by {self.config.criterion} on {len(self.feeds)} batch(es); removed units are physically "
                 "cut (dense runtimes get the MAC reduction as speed)"]
        if self.kind in ("head", "ffn"):
            notes.append("each pruned layer's output projection is refit by ridge least squares on the same batches "
                         "so the kept units absorb what the removed ones contributed (bias compensation)")
        return notes + [f"save with hf.save_hf_folder(model, example_inputs, folder) (Hugging Face files + ONNX) or "
                        f"model.save_pretrained(folder): {how.get(self.representation, 'not rebuilt yet')}"]


class _UnitPruning(_TransformerPruning):
    """Heads or FFN units: local (same fraction per layer) or global (ranked across layers)."""

    def _keep_min(self, orig: int) -> int:
        """Fewest units a layer may keep: one, or (global scope) what ``max_amount`` leaves."""
        if self.config.scope == "local":
            return 1
        return max(1, math.ceil(orig * (1.0 - float(self.config.max_amount)) - 1e-9))

    def _round(self, keep: int, live: int) -> int:
        r = self.config.round_to if self.kind == "ffn" else None
        return min(live, int(math.ceil(keep / r) * r)) if r else keep

    def step(self, fraction: float) -> None:
        bl = hf.blocks(self.model)
        measured = self._measure()
        scores, grams = measured.scores, measured.grams
        plan: dict[int, int] = {}        # block index -> units to remove now
        elig = [i for i, b in enumerate(bl) if id(b.layer) in self.eligible]
        if self.config.scope == "local":
            for i in elig:
                b, orig = bl[i], self.before[id(bl[i].layer)]
                live = self._size(b)
                keep = max(orig - round(fraction * self.amount[id(b.layer)] * orig), self._keep_min(orig))
                plan[i] = max(0, live - self._round(keep, live))
        else:
            total = sum(self.before[id(bl[i].layer)] for i in elig)
            goal = round(fraction * self.config.amount * total) - sum(self.before[id(bl[i].layer)] - self._size(bl[i])
                                                                       for i in elig)
            norm = {i: scores[i] / scores[i].norm().clamp(min=1e-12) if self.config.criterion == "taylor"
                    else scores[i] for i in elig}
            ranked = sorted(((float(norm[i][u]), i, u) for i in elig for u in range(len(norm[i]))))
            left = {i: self._size(bl[i]) for i in elig}
            for _, i, _u in ranked:
                if goal <= 0:
                    break
                if left[i] - 1 >= self._keep_min(self.before[id(bl[i].layer)]):
                    left[i] -= 1
                    plan[i] = plan.get(i, 0) + 1
                    goal -= 1
            for i in list(plan):
                live = self._size(bl[i])
                plan[i] = live - self._round(live - plan[i], live)
        for i, n in plan.items():
            if n <= 0:
                continue
            order = torch.argsort(scores[i], descending=True)
            keep = sorted(int(u) for u in order[: self._size(bl[i]) - n])
            gram = grams[i] if grams else None
            if self.kind == "head":
                self.prov.live_heads[i] = [self.prov.live_heads[i][u] for u in keep]
                hf.prune_heads(self.model, bl[i], keep, gram)
            else:
                hf.prune_ffn(self.model, bl[i], keep, gram)

    def changes(self) -> tuple[list[LayerChange], list[str], list[str]]:
        after = [self._size(b) for b in hf.blocks(self.model)]
        part, unit = ("attention", "heads") if self.kind == "head" else ("ffn", "units")
        rows = [LayerChange(f"{n}.{part}", part, unit, (b,), (a,))
                for n, b, a in zip(self.names.values(), self.before.values(), after)]
        return rows, [], self._notes()


@register_granularity("head")
class HeadPruning(_UnitPruning):
    """Remove whole attention heads of every (eligible) layer."""

    kind = "head"


@register_granularity("ffn")
class FfnPruning(_UnitPruning):
    """Remove FFN intermediate units (``round_to`` keeps widths a multiple of it)."""

    kind = "ffn"


@register_granularity("transformer-layer")
class TransformerLayerPruning(_TransformerPruning):
    """Drop the least important whole layers (``amount`` = fraction of the layers; at least one stays)."""

    kind = "layer"

    def __init__(self, model: nn.Module, config: PruneConfig, ctx: PruneContext) -> None:
        super().__init__(model, config, ctx)
        n = len(hf.blocks(model))
        self.quota = min(math.floor(config.amount * n + 0.5), len(self.eligible), n - 1)
        self.removed: list[str] = []

    def step(self, fraction: float) -> None:
        bl = hf.blocks(self.model)
        scores = self._measure().scores
        todo = math.floor(self.quota * fraction + 1e-9) - len(self.removed)
        pool = sorted((float(scores[i][0]), i) for i, b in enumerate(bl) if id(b.layer) in self.eligible)
        drop = sorted(i for _, i in pool[:max(0, todo)])
        if drop:
            self.removed += [self.names[id(bl[i].layer)] for i in drop]
            self.prov.live_layers = [o for i, o in enumerate(self.prov.live_layers) if i not in drop]
            self.prov.live_heads = [h for i, h in enumerate(self.prov.live_heads) if i not in drop]
            hf.drop_layers(self.model, drop)

    def changes(self) -> tuple[list[LayerChange], list[str], list[str]]:
        rows = [LayerChange(n, "layer", "block", (p,), (0 if n in self.removed else p,))
                for n, p in zip(self.names.values(), self.params.values())]
        notes = self._notes()
        if self.config.amount > 0 and not self.removed:
            notes.append(f"amount {self.config.amount} of {len(self.params)} layers rounds to 0: nothing removed")
        return rows, list(self.removed), notes
