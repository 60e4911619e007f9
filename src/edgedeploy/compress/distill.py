"""Knowledge distillation: a student learns the teacher's outputs (and optionally its features / hidden states).

loss = alpha * output_loss(student, teacher) + (1 - alpha) * CE(student, labels)
       + feature_weight * sum MSE(adapter(student feature), teacher feature)
       + hidden_weight * sum masked-MSE(student hidden_states[i], teacher hidden_states[j])
output_loss: "kd" = T^2 * KL(teacher/T || student/T) on logits; "cosine" = 1 - cos; "mse".
Adapters are 1x1 convolutions (or linear maps) trained with the student and discarded afterwards.

Models may return a tensor, a tuple (first element used), a dict or a Hugging Face ModelOutput: the compared
output is ``logits`` if present, else ``last_hidden_state`` mean-pooled over the attention mask (a sentence
embedding). Batches may be tensors, (inputs, labels) pairs or dicts of keyword inputs (``labels`` optional),
so a Hugging Face encoder or a pruned transformer recovers from its unpruned self with e.g.
``DistillConfig(output_loss="cosine", alpha=1.0, hidden_pairs=((4, 6), (2, 3)))``.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, ShapeError


OUTPUT_LOSSES = ("kd", "cosine", "mse")


@dataclass(frozen=True)
class DistillConfig:
    """Distillation knobs; the defaults recover a pruned digits CNN from its unpruned self in seconds."""

    temperature: float = 4.0          # softens both distributions; gradients scale by T^2 to compensate
    alpha: float = 0.5                # weight of the soft-target loss; 1 - alpha goes to the hard labels
    feature_pairs: tuple[tuple[str, str], ...] | None = None   # (student module, teacher module) names
    feature_weight: float = 1.0       # weight of the feature (hint) loss
    output_loss: str = "kd"           # kd (logits, temperature), cosine (embeddings), mse
    hidden_pairs: tuple[tuple[int, int], ...] | None = None   # (student, teacher) indices into HF hidden_states
    hidden_weight: float = 1.0        # weight of the hidden-state loss (0 = embeddings output of the model)
    dropout: bool = True              # False: student dropout is 0 while it learns (exact imitation), then restored
    cache_teacher: bool = False       # keep the teacher's outputs per distinct batch: later epochs skip the teacher
    epochs: int = 5
    lr: float = 3e-3
    weight_decay: float = 0.0
    cosine: bool = True               # cosine-anneal the learning rate to 0 over all epochs (stable final accuracy)
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0 (got {self.temperature}); 2-6 is typical")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1] (got {self.alpha}): 1 = soft targets only, 0 = labels only")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"epochs must be an integer >= 1 (got {self.epochs!r})")
        if not self.lr > 0 or self.batch_size < 1 or self.feature_weight < 0:
            raise ConfigError("lr must be > 0, batch_size >= 1 and feature_weight >= 0 "
                              f"(got lr={self.lr}, batch_size={self.batch_size}, feature_weight={self.feature_weight})")
        if self.feature_pairs is not None:
            pairs = tuple(tuple(p) for p in self.feature_pairs)
            if any(len(p) != 2 for p in pairs):
                raise ConfigError("feature_pairs must be (student_layer, teacher_layer) name pairs")
            object.__setattr__(self, "feature_pairs", pairs)
        if self.output_loss not in OUTPUT_LOSSES:
            raise ConfigError(f"unknown output_loss {self.output_loss!r}; choose one of: {', '.join(OUTPUT_LOSSES)}")
        if self.hidden_pairs is not None:
            hp = tuple(tuple(p) for p in self.hidden_pairs)
            if any(len(p) != 2 or not all(isinstance(i, int) and i >= 0 for i in p) for p in hp):
                raise ConfigError("hidden_pairs must be (student_index, teacher_index) pairs of integers >= 0 "
                                  "(indices into the models' hidden_states; 0 = embedding output)")
            object.__setattr__(self, "hidden_pairs", hp)
        if self.hidden_weight < 0:
            raise ConfigError(f"hidden_weight must be >= 0 (got {self.hidden_weight})")


@dataclass
class DistillResult:
    """The trained student and one history row per epoch (losses, and accuracy if eval data was given)."""

    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)


def _batches(data: Any, cfg: DistillConfig, epoch: int) -> Iterable[Any]:
    if hasattr(data, "batches"):
        return data.batches(cfg.batch_size, train=True, seed=cfg.seed + epoch)
    if callable(data):
        return data(epoch)
    return data


def _split(batch: Any) -> tuple[Any, torch.Tensor | None]:
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, Mapping):
        return {k: v for k, v in batch.items() if k != "labels"}, batch.get("labels")
    if isinstance(batch, (tuple, list)) and len(batch) in (1, 2):
        return batch[0], (batch[1] if len(batch) == 2 else None)
    raise ConfigError("distill data must yield tensors, (inputs, labels) pairs or dicts of keyword inputs")


def _call(model: nn.Module, x: Any, hidden: bool) -> Any:
    """Run a model on a tensor or on keyword inputs (dict), asking Hugging Face models for hidden states."""
    if isinstance(x, Mapping):
        return model(**x, output_hidden_states=True) if hidden else model(**x)
    if hidden:
        return model(x, output_hidden_states=True)
    return model(x)


def _key(x: Any) -> str:
    """A digest of a batch's input tensors (shapes and bytes): equal batches share cached teacher outputs."""
    import hashlib

    h = hashlib.sha1()
    for t in (x[k] for k in sorted(x)) if isinstance(x, Mapping) else (x,):
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _size(x: Any) -> int:
    t = next(iter(x.values())) if isinstance(x, Mapping) else x
    return len(t)


def _primary(out: Any, x: Any) -> torch.Tensor:
    """The output to match: a tensor, ``logits``, or ``last_hidden_state`` mean-pooled over the attention mask."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        if out.get("logits") is not None:
            return out["logits"]
        if out.get("last_hidden_state") is not None:
            h = out["last_hidden_state"]
            mask = x.get("attention_mask") if isinstance(x, Mapping) else None
            m = (mask if mask is not None else torch.ones(h.shape[:2])).unsqueeze(-1).to(h.dtype)
            return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise ShapeError(f"cannot find the output to distill in a {type(out).__name__}; return a tensor, or a "
                     "dict/ModelOutput with 'logits' or 'last_hidden_state'")


def _hidden_states(out: Any, pairs: tuple[tuple[int, int], ...], side: int) -> dict[int, torch.Tensor]:
    """The hidden states ``pairs`` use on one side (0 = student, 1 = teacher), by index."""
    states = out.get("hidden_states") if isinstance(out, Mapping) else None
    if states is None:
        raise ConfigError("hidden_pairs needs models that return hidden_states when called with "
                          "output_hidden_states=True (Hugging Face models do)")
    for p in pairs:
        if p[side] >= len(states):
            raise ConfigError(f"hidden pair {p} is out of range: the {('student', 'teacher')[side]} has {len(states)} "
                              "hidden states (0 = embeddings, i = after layer i)")
    return {p[side]: states[p[side]] for p in pairs}


def _hidden_loss(pairs: tuple[tuple[int, int], ...], sh: Mapping[int, torch.Tensor], th: Mapping[int, torch.Tensor],
                 x: Any) -> torch.Tensor:
    """Mean over pairs of the token-masked MSE between student and teacher hidden states."""
    mask = x.get("attention_mask") if isinstance(x, Mapping) else None
    total = torch.zeros(())
    for si, ti in pairs:
        s, t = sh[si], th[ti].detach()
        if s.shape != t.shape:
            raise ShapeError(f"hidden state {si} of the student {tuple(s.shape)} and {ti} of the teacher "
                             f"{tuple(t.shape)} differ; pair states of the same width")
        err = (s - t).pow(2).mean(-1)
        m = mask.to(err.dtype) if mask is not None and mask.shape == err.shape else torch.ones_like(err)
        total = total + (err * m).sum() / m.sum().clamp(min=1.0)
    return total / max(len(pairs), 1)


def _no_dropout(model: nn.Module) -> list[tuple[nn.Module, str, float]]:
    """Set every dropout probability of ``model`` to 0 (nn.Dropout modules and Hugging Face ``attention_dropout``
    floats); returns what to restore."""
    saved = []
    for m in model.modules():
        for attr in ("p", "attention_dropout") if isinstance(m, nn.Dropout) else ("attention_dropout",):
            value = getattr(m, attr, None)
            if isinstance(value, float) and value > 0:
                saved.append((m, attr, value))
                setattr(m, attr, 0.0)
    return saved


def _output_loss(kind: str, s: torch.Tensor, t: torch.Tensor, temperature: float) -> torch.Tensor:
    if kind == "kd":
        return kd_loss(s, t, temperature)
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(s.flatten(1), t.detach().flatten(1), dim=1)).mean()
    return F.mse_loss(s, t.detach())


class _Features:
    """Forward hooks capturing named module outputs."""

    def __init__(self, model: nn.Module, names: list[str], role: str) -> None:
        modules = dict(model.named_modules())
        for n in names:
            if n not in modules:
                import difflib

                close = difflib.get_close_matches(n, [k for k in modules if k], n=3)
                raise ConfigError(f"{role} layer {n!r} in feature_pairs does not exist"
                                  + (f"; did you mean: {', '.join(close)}" if close else ""))
        self.values: dict[str, torch.Tensor] = {}
        self.hooks = [modules[n].register_forward_hook(
            lambda _m, _i, out, n=n: self.values.__setitem__(n, out[0] if isinstance(out, tuple) else out))
            for n in names]

    def close(self) -> None:
        for h in self.hooks:
            h.remove()


def _adapter(s: torch.Tensor, t: torch.Tensor) -> nn.Module:
    """A 1x1 conv (4-D features) or linear map (2-D) from the student's width to the teacher's."""
    if s.dim() == 4 and t.dim() == 4:
        return nn.Conv2d(s.shape[1], t.shape[1], 1, bias=False)
    if s.dim() == 2 and t.dim() == 2:
        return nn.Linear(s.shape[1], t.shape[1], bias=False)
    if s.dim() == 3 and t.dim() == 3 and s.shape[:2] == t.shape[:2]:     # (N, tokens, C): transformer layers
        return nn.Identity() if s.shape[2] == t.shape[2] else nn.Linear(s.shape[2], t.shape[2], bias=False)
    raise ShapeError(f"feature pair shapes {tuple(s.shape)} (student) and {tuple(t.shape)} (teacher) cannot be "
                     "matched; pair two conv feature maps (N,C,H,W), two (N,C) vectors or two (N,T,C) token maps")


def _feature_loss(adapters: nn.ModuleList, pairs: tuple[tuple[str, str], ...], sf: Mapping[str, torch.Tensor],
                  tf: Mapping[str, torch.Tensor]) -> torch.Tensor:
    total = torch.zeros(())
    for adapter, (sn, tn) in zip(adapters, pairs):
        s = adapter(sf[sn])
        t = tf[tn].detach()
        if s.dim() == 4 and s.shape[-2:] != t.shape[-2:]:
            s = F.adaptive_avg_pool2d(s, t.shape[-2:])
        total = total + F.mse_loss(s, t)
    return total


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Soft-target loss: T^2 * KL(softmax(teacher / T) || softmax(student / T)), batch-mean."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits.detach() / t, 1),
                    reduction="batchmean", log_target=True) * t * t


def distill(student: nn.Module, teacher: nn.Module, train_data: Any, config: DistillConfig | None = None, *,
            eval_fn: Callable[[nn.Module], float] | None = None, progress: bool = True,
            inplace: bool = False) -> DistillResult:
    """Train (a copy of) ``student`` to match ``teacher`` on ``train_data``; returns the student and per-epoch history.

    ``train_data``: an object with ``.batches(batch_size, train, seed)`` (e.g. DigitsData), a re-iterable of
    (x, y) / x / dict batches, or ``callable(epoch) -> batches``. Without labels use ``alpha=1``.
    ``eval_fn(model) -> metric`` is recorded in the history after every epoch.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    cfg = config or DistillConfig()
    if not isinstance(student, nn.Module) or not isinstance(teacher, nn.Module):
        raise ConfigError("distill() needs torch.nn.Module student and teacher")
    torch.manual_seed(cfg.seed)
    model = student if inplace else copy.deepcopy(student)
    teacher.eval()
    pairs = cfg.feature_pairs or ()
    hidden = cfg.hidden_pairs or ()
    s_hooks = _Features(model, [p[0] for p in pairs], "student")
    t_hooks = _Features(teacher, [p[1] for p in pairs], "teacher")
    adapters: nn.ModuleList | None = None
    opt = sched = None
    history: list[dict[str, float]] = []
    restore = [] if cfg.dropout else _no_dropout(model)
    cache: dict[str, tuple[torch.Tensor, dict[int, torch.Tensor], dict[str, torch.Tensor]]] = {}
    try:
        with Progress(TextColumn("[bold]distill[/] epoch {task.fields[epoch]}"), BarColumn(),
                      TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(),
                      disable=not progress, transient=True) as bar:
            task = bar.add_task("", total=cfg.epochs, epoch=0, loss=0.0)
            for epoch in range(cfg.epochs):
                model.train()
                sums = {"loss": 0.0, "kd": 0.0, "ce": 0.0, "feat": 0.0, "hidden": 0.0}
                n = 0
                for batch in _batches(train_data, cfg, epoch):
                    x, y = _split(batch)
                    if y is None and cfg.alpha < 1.0:
                        raise ConfigError(f"data has no labels but alpha={cfg.alpha} weights the label loss; "
                                          "use alpha=1.0 for label-free distillation")
                    key = _key(x) if cfg.cache_teacher else None
                    if key is None or key not in cache:
                        with torch.no_grad():
                            t_raw = _call(teacher, x, bool(hidden))
                            t_view = (_primary(t_raw, x), _hidden_states(t_raw, hidden, 1) if hidden else {},
                                      {n: t_hooks.values[n] for _, n in pairs})
                        if key is not None:
                            cache[key] = t_view
                    t_out, t_hid, t_feat = cache[key] if key is not None else t_view
                    s_raw = _call(model, x, bool(hidden))
                    s_out = _primary(s_raw, x)
                    if s_out.shape != t_out.shape:
                        raise ShapeError(f"student output {tuple(s_out.shape)} and teacher output "
                                         f"{tuple(t_out.shape)} differ; distillation needs the same logits shape")
                    if adapters is None:
                        adapters = nn.ModuleList(_adapter(s_hooks.values[s], t_feat[t]) for s, t in pairs)
                        opt = torch.optim.Adam(list(model.parameters()) + list(adapters.parameters()),
                                               lr=cfg.lr, weight_decay=cfg.weight_decay)
                        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs) if cfg.cosine else None
                    kd = _output_loss(cfg.output_loss, s_out, t_out, cfg.temperature)
                    ce = F.cross_entropy(s_out, y) if y is not None and cfg.alpha < 1.0 else torch.zeros(())
                    feat = _feature_loss(adapters, pairs, s_hooks.values, t_feat) if pairs else torch.zeros(())
                    hid = (_hidden_loss(hidden, _hidden_states(s_raw, hidden, 0), t_hid, x) if hidden
                           else torch.zeros(()))
                    loss = cfg.alpha * kd + (1.0 - cfg.alpha) * ce + cfg.feature_weight * feat + cfg.hidden_weight * hid
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    k = _size(x)
                    for key, v in (("loss", loss), ("kd", kd), ("ce", ce), ("feat", feat), ("hidden", hid)):
                        sums[key] += float(v.detach()) * k
                    n += k
                if n == 0:
                    raise ConfigError("distill data yielded no batches")
                if sched is not None:
                    sched.step()
                model.eval()
                row = {"epoch": float(epoch + 1), **{k: v / n for k, v in sums.items()}}
                if eval_fn is not None:
                    row["eval"] = float(eval_fn(model))
                history.append(row)
                bar.update(task, advance=1, epoch=epoch + 1, loss=row["loss"])
    finally:
        s_hooks.close()
        t_hooks.close()
        for module, attr, value in restore:
            setattr(module, attr, value)
    return DistillResult(model.eval(), history)
