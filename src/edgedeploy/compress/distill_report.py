"""Distillation measured: teacher, student-before and student-after top-1 on the held-out split, plus history."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .distill import DistillConfig, distill


@dataclass
class DistillSummary:
    """The distilled student and the accuracies that show what distillation did (percent, held-out data)."""

    model: Any
    teacher_top1: float
    before_top1: float
    after_top1: float
    config: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (without the model)."""
        return {"teacher_top1": self.teacher_top1, "before_top1": self.before_top1, "after_top1": self.after_top1,
                "config": self.config, "history": self.history}


def top1(model: Any, data: Any) -> float:
    """Top-1 accuracy (percent) of a classifier on the labelled evaluation part of ``data``."""
    import torch

    from ..data import batches
    from ..errors import CalibrationError

    got = batches(data, "evaluation", batch_size=256)
    if any(b.labels is None for b in got):
        raise CalibrationError("accuracy needs labelled evaluation data: (x, y) pairs or a splits object")
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(torch.from_numpy(b.inputs[0])).argmax(1).numpy() == b.labels).sum()) for b in got)
    return 100.0 * hits / sum(len(b) for b in got)


def distill_summary(student: Any, teacher: Any, data: Any, config: DistillConfig | None = None) -> DistillSummary:
    """Distill ``teacher`` into (a copy of) ``student`` on ``data`` and measure top-1 before and after."""
    config = config or DistillConfig()
    before, teacher_acc = top1(student, data), top1(teacher, data)
    result = distill(student, teacher, data, config, eval_fn=lambda m: top1(m, data))
    after = result.history[-1].get("eval", top1(result.model, data))
    return DistillSummary(result.model, teacher_acc, before, float(after), asdict(config), result.history)
