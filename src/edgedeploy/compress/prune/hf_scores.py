"""What to cut in a transformer: importance of every attention head, FFN unit and layer, measured on data.

Criteria (PruneConfig.criterion):
* ``l2`` / ``l1``: output norm. A head scores the mean (over real tokens) p-norm of its contribution to the
  attention output projection, ``x_h @ W_o[:, h]^T``; an FFN unit ``|a_j| * ||W_out[:, j]||``; a layer the
  norm of the residual update it makes relative to its input (``||out - in|| / ||in||``).
* ``taylor``: first-order Taylor / gradient importance (Michel et al. 2019 for heads): a gate g = 1 multiplies
  each head's output (each FFN unit, each layer's update); the score is ``sum over batches |dL/dg|``. Needs a
  loss: labels in the data (cross-entropy on the logits) or ``loss_fn(output, inputs)``.
* ``random``: seeded uniform scores (a baseline).
``measure`` scores on ``train_data`` batches (up to 8) or on the example inputs, and in the same pass collects
the Gram matrix of each output projection's input, which ``hf.refit`` uses to compensate the cut.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import ConfigError, ModelRunError
from ._cost import as_tuple
from .hf import Block, blocks, family

MAX_BATCHES = 8


@dataclass
class Feed:
    """One batch split into model arguments, optional labels, and the real-token mask."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    labels: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def run(self, model: nn.Module) -> Any:
        """Forward pass with a clear error."""
        try:
            return model(*self.args, **self.kwargs)
        except Exception as exc:  # noqa: BLE001 - the user's batch does not fit the model
            raise ModelRunError(f"{type(model).__name__} failed on a scoring batch ({type(exc).__name__}: {exc}); "
                                "pass data batches the model accepts (dicts of tensors, (inputs, labels) pairs "
                                "or positional-input tuples)") from exc


def _is_labelled(batch: Any) -> bool:
    return (isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[1], torch.Tensor)
            and batch[1].dim() == 1 and (isinstance(batch[0], Mapping)
                                         or (isinstance(batch[0], torch.Tensor) and batch[0].dim() >= 2)))


def make_feed(batch: Any, fam: str) -> Feed:
    """Dict batches (``labels`` key optional), (inputs, labels) pairs, or positional inputs -> a Feed."""
    labels = None
    if _is_labelled(batch):
        batch, labels = batch
    if isinstance(batch, Mapping):
        kwargs = {k: v for k, v in batch.items() if k != "labels"}
        labels = batch.get("labels", labels)
        feed = Feed((), kwargs, labels, kwargs.get("attention_mask"))
    else:
        args = as_tuple(batch)
        feed = Feed(args, {}, labels, args[1] if fam == "bert" and len(args) > 1 else None)
    if feed.mask is not None:
        feed.mask = feed.mask.to(torch.float32)
    return feed


def feeds(model: nn.Module, data: Iterable[Any] | None, example_inputs: Any) -> list[Feed]:
    """Up to MAX_BATCHES feeds from ``data``, else the example inputs."""
    fam = family(model)
    if data is None:
        return [make_feed(example_inputs, fam)]
    out = []
    for i, batch in enumerate(data):
        if i >= MAX_BATCHES:
            break
        out.append(make_feed(batch, fam))
    if not out:
        raise ConfigError("data yielded no batches; pass a few batches the model accepts, or data=None to score "
                          "on the example inputs")
    return out


def _masked_mean(v: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, float]:
    """Sum over (batch, tokens) of v (B, T, ...) weighted by the mask, and the token count."""
    if mask is None or mask.shape != v.shape[:2]:
        return v.sum((0, 1)), float(v.shape[0] * v.shape[1])
    m = mask.reshape(*mask.shape, *([1] * (v.dim() - 2)))
    return (v * m).sum((0, 1)), float(mask.sum())


def _logits(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping) and "logits" in out:
        return out["logits"]
    raise ConfigError("criterion 'taylor' with labels needs a model returning logits; otherwise pass "
                      "loss_fn=callable(output, labels) -> scalar loss")


def _loss(out: Any, feed: Feed, loss_fn: Callable[..., torch.Tensor] | None) -> torch.Tensor:
    if feed.labels is not None:
        return loss_fn(out, feed.labels) if loss_fn else F.cross_entropy(_logits(out), feed.labels)
    if loss_fn is None:
        raise ConfigError("criterion 'taylor' needs a loss: pass labelled data ((inputs, labels) pairs or a "
                          "'labels' key) or loss_fn=callable(output, inputs) -> scalar loss for label-free models; "
                          "or use criterion 'l2'")
    return loss_fn(out, feed.kwargs or feed.args)


class _Probe:
    """Hooks that measure (norm criteria) or gate (taylor) every head / FFN unit / layer of the given blocks."""

    def __init__(self, kind: str, bl: list[Block], criterion: str) -> None:
        self.kind, self.bl, self.criterion = kind, bl, criterion
        self.p = 1 if criterion == "l1" else 2
        self.mask: torch.Tensor | None = None
        self.sums = [torch.zeros(self._units(b)) for b in bl]
        self.tokens = [0.0] * len(bl)
        self.cols: list[torch.Tensor | None] = [None] * len(bl)    # FFN: p-norm of each down-projection column
        self.grams: list[torch.Tensor | None] = [None] * len(bl)   # [x, 1]^T [x, 1] of each projection's input
        self.gates = [torch.ones(self._units(b), requires_grad=True) for b in bl] if criterion == "taylor" else []
        self.hooks = [self._hook(i, b) for i, b in enumerate(bl)]

    def _gram(self, i: int, x: torch.Tensor) -> None:
        m = self.mask
        rows = x[m.bool()] if m is not None and m.shape == x.shape[:2] else x.reshape(-1, x.shape[-1])
        xa = torch.cat([rows, torch.ones(len(rows), 1, dtype=rows.dtype)], 1).double()
        self.grams[i] = xa.T @ xa if self.grams[i] is None else self.grams[i] + xa.T @ xa

    def _units(self, b: Block) -> int:
        return b.heads if self.kind == "head" else b.width if self.kind == "ffn" else 1

    def _hook(self, i: int, b: Block) -> Any:
        if self.kind == "layer":
            return b.layer.register_forward_hook(lambda _m, args, out: self._layer(i, args[0], out))
        target = b.attn_out if self.kind == "head" else b.ffn_out
        return target.register_forward_pre_hook(lambda m, args: self._input(i, b, m, args[0]))

    def _input(self, i: int, b: Block, lin: nn.Linear, x: torch.Tensor) -> Any:
        self._gram(i, x.detach())
        if self.criterion == "random":
            return None
        if self.kind == "head":
            shaped = x.reshape(*x.shape[:-1], b.heads, b.head_dim)
            if self.gates:
                return ((shaped * self.gates[i][:, None]).reshape(x.shape),)
            w = lin.weight.reshape(lin.out_features, b.heads, b.head_dim)
            contrib = torch.einsum("bthd,ohd->btho", shaped.detach(), w.detach())
            v = contrib.norm(p=self.p, dim=-1)
        else:
            if self.gates:
                return (x * self.gates[i],)
            self.cols[i] = lin.weight.detach().norm(p=self.p, dim=0)
            v = x.detach().abs() ** self.p
        s, n = _masked_mean(v, self.mask)
        self.sums[i] += s
        self.tokens[i] += n
        return None

    def _layer(self, i: int, x: torch.Tensor, out: Any) -> Any:
        y = out[0] if isinstance(out, tuple) else out
        if self.gates:
            gated = x + self.gates[i] * (y - x)
            return (gated, *out[1:]) if isinstance(out, tuple) else gated
        v = (y - x).detach().norm(p=self.p, dim=-1) / x.detach().norm(p=self.p, dim=-1).clamp(min=1e-12)
        s, n = _masked_mean(v, self.mask)
        self.sums[i] += s.reshape(1)
        self.tokens[i] += n
        return None

    def close(self) -> None:
        for h in self.hooks:
            h.remove()

    def scores(self) -> list[torch.Tensor]:
        if self.gates:
            return list(self.sums)
        means = [s / max(n, 1.0) for s, n in zip(self.sums, self.tokens)]
        if self.kind == "ffn":     # (mean |a_j|^p)^(1/p) * ||W_out[:, j]||_p
            return [m ** (1.0 / self.p) * c for m, c in zip(means, self.cols)]
        return means


@dataclass
class Measured:
    """Importance of every unit (one tensor per layer) and, for heads / FFN units, the Gram matrices of each
    layer's output-projection input (for ``hf.refit``)."""

    scores: list[torch.Tensor]
    grams: list[torch.Tensor]


def measure(model: nn.Module, kind: str, batches: list[Feed], criterion: str,
            loss_fn: Callable[..., torch.Tensor] | None = None, seed: int = 0) -> Measured:
    """Score every head (kind "head"), FFN unit ("ffn") or layer ("layer") in one pass over ``batches``."""
    bl = blocks(model)
    if criterion not in ("l1", "l2", "taylor", "random"):
        raise ConfigError(f"criterion {criterion!r} cannot rank transformer {kind}s; choose one of: l1, l2, taylor, "
                          "random")
    probe = _Probe(kind, bl, criterion)
    was_training = model.training
    model.eval()
    try:
        for feed in batches if kind != "layer" or criterion != "random" else ():
            probe.mask = feed.mask
            if criterion == "taylor":
                with torch.enable_grad():
                    loss = _loss(feed.run(model), feed, loss_fn)
                    grads = torch.autograd.grad(loss, probe.gates, allow_unused=True)
                for i, g in enumerate(grads):
                    if g is not None:
                        probe.sums[i] += g.detach().abs()
            else:
                with torch.no_grad():
                    feed.run(model)
    finally:
        probe.close()
        model.train(was_training)
    if criterion == "random":
        g = torch.Generator().manual_seed(seed)
        scores = [torch.rand(probe._units(b), generator=g) for b in bl]
    else:
        scores = probe.scores()
    grams = [x for x in probe.grams if x is not None]
    return Measured(scores, grams if len(grams) == len(bl) else [])
