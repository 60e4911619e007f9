"""Torch quantizer: torch.ao fake quantization (PTQ calibration or QAT fine-tuning) exported as an INT8 QDQ ONNX."""
from __future__ import annotations

from typing import Any

from ...._io import atomic_path
from ....errors import CalibrationError, ConfigError
from ..registry import Artifact, Job, Quantizer, register_quantizer


def _train_batches(data: Any, batch_size: int = 64, seed: int = 0) -> list[tuple[Any, Any]]:
    """(x, y) training batches from a dataset object, an (x, y) pair or a list/loader of (x, y) batches."""
    import torch

    if hasattr(data, "x_train"):
        data = (data.x_train, data.y_train)
    if isinstance(data, tuple) and len(data) == 2 and hasattr(data[0], "shape") and hasattr(data[1], "shape"):
        x, y = (torch.as_tensor(t) for t in data)
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        return [(x[idx[i:i + batch_size]], y[idx[i:i + batch_size]]) for i in range(0, len(x), batch_size)]
    batches = [(torch.as_tensor(b[0]), torch.as_tensor(b[1])) for b in data]
    if not batches:
        raise CalibrationError("train_data is empty; QAT needs labelled (x, y) batches")
    return batches


@register_quantizer
class TorchQuantizer(Quantizer):
    """Fake-quantized Conv2d/Linear (torch.ao FakeQuantize): calibrated PTQ, or QAT fine-tuning on train_data."""

    name = "torch"
    modes = ("int8-static", "qat")

    def quantize(self, job: Job) -> Artifact:
        import torch

        from .. import fakequant
        from ..graph import fold_weight_quantizers, to_onnx

        cfg = job.config
        if job.module is None:
            raise ConfigError(f"backend torch quantizes a torch nn.Module, not the file {job.fp32_onnx.name}; "
                              "pass the module, or use backend onnxruntime/openvino for ONNX files")
        qat = cfg.mode == "qat"
        if qat and job.train_data is None:
            raise CalibrationError("mode 'qat' fine-tunes the model: pass train_data=(x, y) labelled batches")
        torch.manual_seed(cfg.seed)
        model = fakequant.wrap(fakequant.fold_batchnorm(job.module), cfg, job.ignored_modules, qat=qat)
        names = list(job.calibration[0])
        batches = [tuple(torch.from_numpy(f[n]) for n in names) for f in job.calibration]
        fakequant.calibrate(model, batches)
        if qat:
            fakequant.finetune(model, _train_batches(job.train_data, seed=cfg.seed), cfg.qat_epochs, cfg.qat_lr,
                               seed=cfg.seed)
        model.eval()
        dest = job.out / f"model_{cfg.mode.replace('-', '_')}_qdq.onnx"
        with atomic_path(dest) as tmp:
            to_onnx(fakequant.int8_exportable(model), job.calibration[0], tmp, opset=max(cfg.opset, 13))
            fold_weight_quantizers(tmp)
        return Artifact(dest, module=model, onnx_path=dest)
