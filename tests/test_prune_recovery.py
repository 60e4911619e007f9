"""The pruning case study on real digits: 50% channels off a trained residual CNN, recovered by distillation."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from edgedeploy.compress.distill import DistillConfig, distill
from edgedeploy.compress.prune import PruneConfig, prune
from edgedeploy.zoo.digits import DigitsCNN, DigitsData, accuracy, load_digits_data


def _fit(model: DigitsCNN, data: DigitsData, epochs: int = 10) -> DigitsCNN:
    """Seeded Adam + cosine schedule: a stable ~99% teacher (a constant rate leaves the last epoch noisy)."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    model.train()
    for epoch in range(epochs):
        for xb, yb in data.batches(64, seed=epoch):
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
        sched.step()
    return model.eval()


@pytest.mark.slow
def test_half_channels_fewer_macs_and_recovered_by_distillation(tmp_path):
    from edgedeploy.export.onnx import OnnxConfig, export_onnx

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = load_digits_data()
        torch.manual_seed(0)
        teacher = _fit(DigitsCNN(), data)
        base = accuracy(teacher, data.x_test, data.y_test)
        x = data.x_test[:1]
        one_shot = prune(teacher, PruneConfig("channel", "local", 0.5), x, progress=False)
        assert accuracy(one_shot.model, data.x_test, data.y_test) < base - 20   # the cut really hurts

        def recover(model: torch.nn.Module, step: int) -> None:       # prune -> distill -> prune ...
            distill(model, teacher, data, DistillConfig(epochs=2), inplace=True, progress=False)

        result = prune(teacher, PruneConfig("channel", "local", 0.5, steps=3), x, fine_tune=recover, progress=False)
        rep = result.report
        assert base > 98.5
        assert rep.macs_ratio >= 3.5                                 # inputs and outputs of inner convs halve
        assert rep.macs_after == one_shot.report.macs_after          # same final architecture as one shot
        rec = distill(result.model, teacher, data, DistillConfig(epochs=20, lr=3e-3, alpha=0.5, temperature=4.0),
                      progress=False)
        after = accuracy(rec.model, data.x_test, data.y_test)
        assert after >= base - 0.5, (base, after)
        onnx = export_onnx(rec.model, (data.x_test[:8],), OnnxConfig(exporter="torchscript"), out=tmp_path)
        assert onnx.parity.max_abs < 1e-4
    finally:
        torch.set_num_threads(threads)
