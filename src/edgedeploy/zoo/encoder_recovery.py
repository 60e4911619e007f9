"""Recover a pruned sentence encoder from its unpruned self, judged on real English text.

Label-free distillation (``compress.distill``): cosine between the student's and the teacher's mean-pooled
sentence embeddings plus the token-masked MSE of paired hidden states, on the training side of the stdlib
docstring set (``zoo.sentences``; with ``more_text`` also the docstrings of installed libraries, about ten times
the text). Embedding fidelity to the teacher is measured on the held-out side before and after.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from ..errors import ConfigError
from . import sentences as S

HIDDEN = ("last", "all", "none")


@dataclass(frozen=True)
class RecoveryConfig:
    """How long and on what a pruned encoder learns back its teacher's embeddings."""

    epochs: int = 6
    lr: float = 5e-4
    batch_size: int = 32
    max_length: int = 64          # tokens per training sentence (the docstring sentences have 6-40 words)
    more_text: bool = False       # add installed libraries' docstrings (zoo.sentences.LIBRARIES) to the training text
    hidden: str = "last"          # hidden-state pairs: the last layer, every kept layer with its original, or none
    limit: int | None = None      # train on the first ``limit`` sentences only (quick runs)
    n_eval: int = 1500            # held-out summary sentences the fidelity is measured on
    n_pairs: int = 500

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1 or not self.lr > 0:
            raise ConfigError(f"epochs must be an integer >= 1 and lr > 0 (got {self.epochs!r}, {self.lr!r})")
        if self.batch_size < 1 or self.max_length < 8:
            raise ConfigError(f"batch_size must be >= 1 and max_length >= 8 (got {self.batch_size}, "
                              f"{self.max_length})")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1 sentences or None (got {self.limit})")
        if self.hidden not in HIDDEN:
            raise ConfigError(f"hidden must be one of {', '.join(HIDDEN)} (got {self.hidden!r})")


@dataclass
class EncoderRecovery:
    """The recovered student, its fidelity to the teacher before and after, and the training history."""

    model: nn.Module
    before: S.EmbeddingFidelity
    after: S.EmbeddingFidelity
    train_sentences: int
    seconds: float
    source: str
    config: RecoveryConfig
    history: list[dict[str, float]] = field(default_factory=list)   # per epoch; "eval" = held-out cosine

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the model)."""
        return {"before": self.before.to_dict(), "after": self.after.to_dict(), "train_sentences":
                self.train_sentences, "seconds": self.seconds, "source": self.source, "config": asdict(self.config),
                "history": self.history}

    def summary(self) -> str:
        """One line: cosine and nearest-neighbour agreement before -> after, and the held-out cosine per epoch
        (still rising at the end: more epochs would help)."""
        b, a = self.before, self.after
        curve = " -> ".join(f"{h['eval']:.4f}" for h in self.history if "eval" in h)
        return (f"cosine to the teacher {b.cosine_mean:.4f} -> {a.cosine_mean:.4f} (min {a.cosine_min:.3f}), "
                f"NN agreement {b.nn_agreement:.3f} -> {a.nn_agreement:.3f} on {a.n_sentences} held-out "
                f"sentences; {self.train_sentences} training sentences, {self.seconds:.0f} s"
                + (f"; held-out cosine per epoch {curve}" if curve else ""))


def recover_encoder(student: nn.Module, teacher: nn.Module, tokenizer: Any, config: RecoveryConfig | None = None,
                    progress: bool = True) -> EncoderRecovery:
    """Distill ``teacher`` into (a copy of) the pruned ``student`` on docstring text; measure fidelity around it."""
    from ..compress.distill import DistillConfig, distill
    from ..compress.prune import hf

    cfg = config or RecoveryConfig()
    sset = S.load_sentences(cfg.n_eval, cfg.n_pairs)
    train = (sset.train + (S.library_sentences(sset) if cfg.more_text else ()))[:cfg.limit]
    ref = S.encode(teacher, sset.texts(), tokenizer)
    before = S.embedding_fidelity(ref, S.encode(student, sset.texts(), tokenizer), sset)
    pairs = {"last": hf.hidden_state_pairs(student)[-1:], "all": hf.hidden_state_pairs(student), "none": None}
    dcfg = DistillConfig(output_loss="cosine", alpha=1.0, hidden_pairs=pairs[cfg.hidden], epochs=cfg.epochs,
                         lr=cfg.lr, dropout=False, cache_teacher=cfg.epochs > 1 and cfg.hidden != "all")
    measured: list[S.EmbeddingFidelity] = []

    def held_out_cosine(model: nn.Module) -> float:
        measured.append(S.embedding_fidelity(ref, S.encode(model, sset.texts(), tokenizer), sset))
        return measured[-1].cosine_mean

    t0 = time.perf_counter()
    result = distill(student, teacher, S.training_batches(tokenizer, train, cfg.batch_size, cfg.max_length), dcfg,
                     eval_fn=held_out_cosine, progress=progress)
    seconds = time.perf_counter() - t0
    after = measured[-1]                # measured after the last epoch, on the weights distill returns
    source = sset.source + (" + docstrings of installed libraries" if cfg.more_text else "")
    return EncoderRecovery(result.model, before, after, len(train), seconds, source, cfg, result.history)
