"""Torch quantizer: torch.ao fake quantization (PTQ calibration or QAT fine-tuning) exported as an INT8 QDQ ONNX."""
from __future__ import annotations

from typing import Any

from ....errors import CalibrationError, ConfigError
from ..registry import Artifact, Job, Quantizer, register_quantizer


def _train_batches(data: Any, batch_size: int = 64, seed: int = 0) -> list[tuple[Any, Any]]:
    """Shuffled (x, y) training batches from anything ``edgedeploy.data`` reads (labels required)."""
    import numpy as np
    import torch

    from ....data import batches

    got = batches(data, "train", batch_size=4096)
    if any(b.labels is None for b in got):
        raise CalibrationError("QAT needs labelled training data: pass train_data=(x, y) or (x, y) batches")
    x = torch.from_numpy(np.concatenate([b.inputs[0] for b in got]))
    y = torch.from_numpy(np.concatenate([b.labels for b in got]))
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return [(x[idx[i:i + batch_size]], y[idx[i:i + batch_size]]) for i in range(0, len(x), batch_size)]


@register_quantizer
class TorchQuantizer(Quantizer):
    """Fake-quantized Conv2d/Linear (torch.ao FakeQuantize): calibrated PTQ, or QAT fine-tuning on train_data."""

    name = "torch"
    modes = ("int8-static", "qat")

    def quantize(self, job: Job) -> Artifact:
        import torch

        from .. import fakequant
        from ....export.onnx import OnnxConfig, export_onnx
        from ..graph import fold_weight_quantizers

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
        name = f"model_{cfg.mode.replace('-', '_')}_qdq"
        example = tuple(torch.from_numpy(job.calibration[0][n][:1]) for n in names)
        # fake-quant rounds to the same grid in torch and ONNX Runtime; one quantization step of the output
        # (round-half differences at grid midpoints) is within rtol 1e-2 of the output range
        onnx_cfg = OnnxConfig(exporter="torchscript", opset=max(cfg.opset, 13), input_names=tuple(names),
                              dynamic_axes={n: {0: "batch"} for n in names}, rtol=1e-2, simplify=False)
        dest = export_onnx(fakequant.int8_exportable(model), example, onnx_cfg, out=job.out, name=name).path
        fold_weight_quantizers(dest)
        return Artifact(dest, module=model, onnx_path=dest)
