"""Exit decisions in numpy, shared by torch, ONNX Runtime and OpenVINO: scores, the staged loop, the result.

A sample leaves at the first exit whose score is strictly above that exit's threshold (the last exit
always answers), so thresholds of 1.0 switch every early exit off. Scores live in [0, 1] for both criteria:
"confidence" = max softmax probability, "entropy" = 1 - H(p) / log(classes) (certainty).
This module imports only numpy, so a deployed driver needs no torch.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import ConfigError

CRITERIA = ("confidence", "entropy")
StageFn = Callable[[list[np.ndarray]], list[np.ndarray]]   # (*carry_in) -> (*carry_out, logits)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (stable)."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def exit_scores(logits: np.ndarray, criterion: str = "confidence") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, confidence = max softmax probability, score used against the threshold) per row."""
    p = softmax(logits)
    labels = p.argmax(axis=-1)
    conf = p.max(axis=-1)
    if criterion == "confidence":
        return labels, conf, conf
    if criterion == "entropy":
        ent = -(p * np.log(np.clip(p, 1e-300, None))).sum(axis=-1)
        return labels, conf, np.clip(1.0 - ent / np.log(p.shape[-1]), 0.0, 1.0)
    raise ConfigError(f"unknown exit criterion {criterion!r}; choose one of {', '.join(CRITERIA)}")


def first_exit(scores: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """0-based exit taken by each sample from all-exit ``scores`` (N, exits); the last exit always answers."""
    n, k = scores.shape
    taken = np.zeros((n, k), dtype=bool)
    taken[:, :k - 1] = scores[:, :k - 1] > np.asarray(thresholds, dtype=np.float64)[None, :]
    taken[:, k - 1] = True
    return taken.argmax(axis=1)


@dataclass(frozen=True)
class ExitDecision:
    """One sample's answer: label, its name, softmax confidence and the (1-based) exit that gave it."""

    label: int
    name: str
    confidence: float
    exit: int

    def __str__(self) -> str:
        return f"PREDICTED LABEL: {self.name} CONFIDENCE: {self.confidence:.3f}, EXIT: {self.exit}"


@dataclass
class ExitPrediction:
    """Per-sample labels, confidences and exits, plus how many samples each stage really ran on and its MACs."""

    labels: np.ndarray
    confidence: np.ndarray
    exits: np.ndarray                       # 1-based exit per sample (len(stage_macs) = the backbone's own output)
    stage_samples: list[int]                # samples each stage processed (compaction: later stages see fewer)
    stage_macs: list[int]                   # MACs per sample of each stage (body + its exit head)
    full_macs: int                          # MACs per sample of the original model (no heads)
    class_names: tuple[str, ...] | None = None
    runtime: str = "torch"
    stage_calls: list[int] = field(default_factory=list)   # stage invocations (batches) that ran

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> ExitDecision:
        label = int(self.labels[i])
        name = self.class_names[label] if self.class_names else str(label)
        return ExitDecision(label, name, float(self.confidence[i]), int(self.exits[i]))

    @property
    def executed_macs(self) -> int:
        """MACs really executed for the whole batch: stage MACs x samples that stage ran on."""
        return int(sum(m * n for m, n in zip(self.stage_macs, self.stage_samples)))

    @property
    def macs_per_sample(self) -> float:
        """Average executed MACs per sample."""
        return self.executed_macs / max(len(self), 1)

    @property
    def saving(self) -> float:
        """Fraction of the full model's MACs not executed (negative when most samples run every exit head)."""
        return 1.0 - self.macs_per_sample / self.full_macs if self.full_macs else 0.0

    def histogram(self) -> list[int]:
        """Samples per exit (index 0 = exit 1)."""
        return np.bincount(self.exits - 1, minlength=len(self.stage_macs)).astype(int).tolist()

    def accuracy(self, labels: Any) -> float:
        """Top-1 accuracy in percent against integer labels."""
        y = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels).reshape(-1)
        return 100.0 * float((self.labels == y).mean())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: per-sample arrays, exit histogram and executed MACs."""
        return {"runtime": self.runtime, "labels": self.labels.tolist(), "confidence": self.confidence.tolist(),
                "exits": self.exits.tolist(), "exit_histogram": self.histogram(), "stage_samples": self.stage_samples,
                "stage_calls": self.stage_calls, "stage_macs": self.stage_macs, "full_macs": self.full_macs,
                "executed_macs": self.executed_macs, "macs_per_sample": self.macs_per_sample,
                "saving": self.saving, "class_names": list(self.class_names) if self.class_names else None}

    def __str__(self) -> str:
        return "\n".join(str(self[i]) for i in range(len(self)))

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"early-exit predictions on {self.runtime}: {len(self)} samples, "
                        f"{100 * self.saving:.1f}% of the full model's MACs skipped")
        for c in ("exit", "samples", "stage ran on", "stage MACs/sample"):
            t.add_column(c, justify="right")
        for i, (h, n, m) in enumerate(zip(self.histogram(), self.stage_samples, self.stage_macs)):
            t.add_row(str(i + 1), str(h), str(n), f"{m:,}")
        return t


def run_staged(stages: Sequence[StageFn], inputs: list[np.ndarray], thresholds: Sequence[float], criterion: str,
               stage_macs: Sequence[int], full_macs: int, class_names: Sequence[str] | None = None,
               runtime: str = "torch") -> ExitPrediction:
    """Run stages in order on a batch; samples whose exit is confident leave the batch, the rest go on."""
    if len(thresholds) != len(stages) - 1:
        raise ConfigError(f"{len(stages)} stages need {len(stages) - 1} thresholds, got {len(thresholds)}")
    n = int(inputs[0].shape[0])
    labels = np.zeros(n, dtype=np.int64)
    conf = np.zeros(n, dtype=np.float64)
    exits = np.zeros(n, dtype=np.int64)
    samples = [0] * len(stages)
    calls = [0] * len(stages)
    idx = np.arange(n)
    carry = list(inputs)
    for s, stage in enumerate(stages):
        outs = stage(carry)
        samples[s], calls[s] = len(idx), 1
        lab, c, score = exit_scores(outs[-1], criterion)
        done = np.ones(len(idx), dtype=bool) if s == len(stages) - 1 else score > thresholds[s]
        labels[idx[done]], conf[idx[done]], exits[idx[done]] = lab[done], c[done], s + 1
        if done.all():
            break
        carry = list(outs[:-1])
        if done.any():                      # compaction: exited samples leave the batch
            keep = ~done
            idx = idx[keep]
            carry = [np.ascontiguousarray(a[keep]) for a in carry]
    return ExitPrediction(labels, conf, exits, samples, list(stage_macs), int(full_macs),
                          tuple(class_names) if class_names else None, runtime, calls)


def merge(parts: Sequence[ExitPrediction]) -> ExitPrediction:
    """Concatenate predictions of consecutive chunks of one input (stage sample and call counts add up)."""
    first = parts[0]
    if len(parts) == 1:
        return first
    return ExitPrediction(np.concatenate([p.labels for p in parts]), np.concatenate([p.confidence for p in parts]),
                          np.concatenate([p.exits for p in parts]),
                          [sum(v) for v in zip(*(p.stage_samples for p in parts))], first.stage_macs, first.full_macs,
                          first.class_names, first.runtime, [sum(v) for v in zip(*(p.stage_calls for p in parts))])
