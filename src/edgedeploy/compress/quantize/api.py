"""quantize(): one verb over every quantizer backend, with a verified before/after report."""
from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ... import data as ddata
from ..._io import output_lock, package_versions, publish, staging, update_manifest
from ...errors import ArtifactError, CalibrationError, ConfigError
from ...onnx_utils import file_size, onnx_inputs
from . import graph
from .config import QuantConfig
from .keep_float import choose_float_layers
from .registry import Artifact, Job, Quantizer, get_quantizer, names_of
from .report import QuantReport, build_layer_reports, output_errors, review

INPUT_NAMES = "input"


@dataclass
class QuantResult:
    """The quantized artifact (``path``; ``model`` is the torch module when there is one) and its report."""

    model: Any
    path: Path
    report: QuantReport
    config: QuantConfig
    onnx_path: Path | None = None
    fp32_onnx: Path | None = None
    mixed: Any = None                 # qnn mixed precision choice (which activations went to u16)

    def __str__(self) -> str:
        return f"{self.path}\n{self.report}"


def quantize(model_or_onnx: Any, config: QuantConfig | None = None, *, calibration: Any = None,
             eval_data: Any = None, train_data: Any = None, example_inputs: Any = None,
             out: str | Path | None = None, per_layer: bool = True, latency: bool = True) -> QuantResult:
    """Quantize a torch module or ONNX file with ``config``; measure size, accuracy, latency, energy, layer error.

    Data arguments take anything ``edgedeploy.data`` reads (arrays, (x, y) pairs, batches, DataLoaders, splits).
    The report measures every output and flags a poor result with the worst layers and the fix."""
    config = config or QuantConfig()
    quantizer = get_quantizer(config.backend, config.mode)
    quantizer.check(config)
    if config.mode == "qat" and train_data is None:
        raise CalibrationError("mode 'qat' fine-tunes the model: pass train_data=(x, y) labelled batches")
    out_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="edgedeploy-quant-"))
    with output_lock(out_dir) as folder, staging(folder) as stage:     # all or nothing: published at the end
        result = _quantize(model_or_onnx, config, quantizer, calibration, eval_data, train_data, example_inputs,
                           stage, per_layer, latency)
        return _publish(result, stage, folder, model_or_onnx)


def _publish(result: QuantResult, stage: Path, folder: Path, source: Any) -> QuantResult:
    """Move the finished artifacts from the staging folder into ``folder`` and record them in its manifest."""
    moved = {p: folder / p.name for p in (result.path, result.path.with_suffix(".bin"), result.onnx_path,
                                          result.fp32_onnx, stage / "quant_report.json")
             if p is not None and p.parent == stage and p.exists()}
    publish(stage, folder, [p.name for p in moved])
    cfg = result.config
    main = moved[result.path].name
    update_manifest(folder, f"quantize-{cfg.mode}-{cfg.backend}", {
        "files": [main] + sorted(p.name for p in moved.values() if p.name != main), "config": cfg.to_dict(),
        "source": str(source)[:200] if isinstance(source, (str, Path)) else type(source).__name__,
        "versions": package_versions("onnx", "onnxruntime", "openvino", "nncf")})
    return dataclasses.replace(result, path=moved[result.path],
                               model=moved[result.path] if result.model == result.path else result.model,
                               onnx_path=moved.get(result.onnx_path, result.onnx_path) if result.onnx_path else None,
                               fp32_onnx=moved.get(result.fp32_onnx, result.fp32_onnx))


def _quantize(model_or_onnx: Any, config: QuantConfig, quantizer: Quantizer, calibration: Any, eval_data: Any,
              train_data: Any, example_inputs: Any, out_dir: Path, per_layer: bool, latency: bool) -> QuantResult:
    module, fp32_onnx = _float_onnx(model_or_onnx, example_inputs, eval_data, calibration, out_dir, config)
    specs = onnx_inputs(fp32_onnx)
    calib = ddata.to_feeds(calibration, specs, "calibration", limit=config.calibration_samples)
    if (config.mode in quantizer.calibrated_modes or config.keep_float) and not calib:
        needs = f"mode {config.mode!r}" if config.mode in quantizer.calibrated_modes else "keep_float"
        raise CalibrationError(f"{needs} needs calibration data: pass calibration= a few hundred representative "
                               "inputs (tensor/array, (x, y) pair, batches, a DataLoader or an image folder), "
                               "not your test set")
    layers = graph.layers(fp32_onnx)
    ignored = _resolve_ignored(config.ignored, layers)
    job = Job(config, fp32_onnx, module, calib, [ly.name for ly in ignored], [ly.module for ly in ignored],
              train_data, out_dir)
    note = None
    if config.keep_float:
        candidates = len(layers) - len(job.ignored_nodes)
        if config.keep_float > candidates:
            raise ConfigError(f"keep_float={config.keep_float} but the model has only {candidates} quantizable "
                              "layer(s) not already ignored; lower keep_float")
        job, note = choose_float_layers(quantizer, job, layers)
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        progress.add_task(f"quantizing {config.mode} via {config.backend}", total=None)
        artifact = quantizer.quantize(job)
        report = _measure(quantizer, job, artifact, layers, eval_data, specs, per_layer, latency)
    report.notes.extend(artifact.notes)
    if note:
        report.notes.append(note)
    report.notes.extend(review(report, config))
    report.to_json(out_dir / "quant_report.json")
    return QuantResult(artifact.module if artifact.module is not None else artifact.path, artifact.path, report,
                       config, artifact.onnx_path, fp32_onnx, artifact.mixed)


def _float_onnx(source: Any, example: Any, eval_data: Any, calibration: Any, out: Path,
                config: QuantConfig) -> tuple[Any, Path]:
    """(torch module or None, FP32 ONNX path) for the user's model or file."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.suffix.lower() != ".onnx" or not path.is_file():
            raise ArtifactError(f"{path} is not an existing .onnx file; pass a torch nn.Module or an ONNX file")
        return None, path
    import torch

    from ...export.onnx import OnnxConfig, export_onnx

    if not isinstance(source, torch.nn.Module):
        raise ConfigError(f"cannot quantize a {type(source).__name__}; pass a torch nn.Module or an .onnx path")
    if example is not None:
        args = example if isinstance(example, (tuple, list)) else (example,)
        first: tuple[Any, ...] | None = tuple(np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a)[:1]
                                              for a in args)
    else:
        first = ddata.first_inputs(eval_data, "evaluation") or ddata.first_inputs(calibration, "calibration")
    if first is None:
        raise CalibrationError("cannot tell the model's input shape: pass example_inputs=, calibration= or eval_data=")
    names = [INPUT_NAMES] if len(first) == 1 else [f"{INPUT_NAMES}{i}" for i in range(len(first))]
    tensors = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in first)
    # the TorchScript exporter folds BatchNorm and names nodes after module paths (used for `ignored`);
    # export_onnx checks the file and its parity against torch on varied inputs
    outs = len(_outputs(source, tensors))
    out_names = ["output"] if outs == 1 else [f"output{i}" for i in range(outs)]
    onnx_cfg = OnnxConfig(exporter="torchscript", opset=config.opset, input_names=tuple(names),
                          output_names=tuple(out_names), dynamic_axes={n: {0: "batch"} for n in [*names, *out_names]})
    return source, export_onnx(source, tensors, onnx_cfg, out=out, name="model_fp32").path


def _outputs(model: Any, tensors: tuple[Any, ...]) -> list[Any]:
    from ...export._common import torch_outputs

    return torch_outputs(model.eval(), tensors)


def _resolve_ignored(names: tuple[str, ...], layers: list[graph.Layer]) -> list[graph.Layer]:
    by_name = {ly.name: ly for ly in layers} | {ly.module: ly for ly in layers}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"ignored layer(s) {', '.join(map(repr, unknown))} not found in the model; quantizable "
                          f"layers are: {names_of(ly.module + ' (' + ly.name + ')' for ly in layers)}")
    return [by_name[n] for n in names]


def _run_all(session: Any, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    outs = [session.run(f) for f in feeds]
    return [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]


def _measure(quantizer: Quantizer, job: Job, artifact: Artifact, layers: list[graph.Layer], eval_data: Any,
             specs: list[ddata.InputSpec], per_layer: bool, latency: bool) -> QuantReport:
    """Size, accuracy and every output's error, latency and energy before/after, plus per-layer SQNR."""
    from ...runtime import benchmark

    cfg = job.config
    base = quantizer.baseline(job.fp32_onnx, job.out)
    report = QuantReport(cfg.mode, cfg.backend, file_size(base), file_size(artifact.path), threads=cfg.threads)
    feeds, labels = ddata.labelled_feeds(eval_data, specs)
    feeds = feeds or job.calibration[:4]
    run_b, run_q = quantizer.session(base, cfg.threads), quantizer.session(artifact.path, cfg.threads)
    if feeds:
        yb, yq = _run_all(run_b, feeds), _run_all(run_q, feeds)
        report.outputs = output_errors([o.name for o in run_b.outputs], yb, yq)
        first = report.outputs[0]
        report.output_max_abs_error, report.output_cosine, report.output_cosine_min = (
            first.max_abs, first.cosine_mean, first.cosine_min)
        if labels is not None:
            report.accuracy_before = float(100.0 * np.mean(yb[0].argmax(-1) == labels))
            report.accuracy_after = float(100.0 * np.mean(yq[0].argmax(-1) == labels))
    if feeds and latency:
        one = {k: v[:1] for k, v in feeds[0].items()}
        report.latency_before_ms = benchmark(run_b, one, warmup=5, repeats=cfg.latency_repeats).median_ms
        report.latency_after_ms = benchmark(run_q, one, warmup=5, repeats=cfg.latency_repeats).median_ms
    matched = graph.match_outputs(layers, artifact.onnx_path) if artifact.onnx_path and per_layer else {}
    sqnr = _layer_sqnr(job, artifact, matched, feeds) if matched and feeds else {}
    build_layer_reports(report, layers, matched, sqnr, job.ignored_nodes)
    if cfg.backend == "openvino":
        report.notes.append("OpenVINO runs with INFERENCE_PRECISION_HINT=f32 (this CPU would otherwise use bf16)")
    if cfg.mode == "fp16" and cfg.backend == "openvino":
        report.notes.append("FP16 IR: weights stored in fp16, decompressed for CPU (a MyriadX VPU computes in fp16)")
    return report


def _layer_sqnr(job: Job, artifact: Artifact, matched: dict[str, tuple[str, bool]],
                feeds: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """SQNR (dB) of every layer's output in the quantized ONNX twin vs the FP32 model, on up to 64 samples."""
    import onnx

    from ...onnx_utils import probe_outputs, sqnr_db
    from ...runtime import load

    names = list(matched)
    fp32_out = {n.name: n.output[0] for n in onnx.load(str(job.fp32_onnx)).graph.node}
    sample = {k: v[:64] for k, v in feeds[0].items()}
    results = []
    for src, tensors, tag in ((job.fp32_onnx, [fp32_out[n] for n in names], "fp32"),
                              (artifact.onnx_path, [matched[n][0] for n in names], "q")):
        probe = probe_outputs(src, tensors, job.out / f"_probe_{tag}.onnx")
        try:
            session = load(probe, runtime="onnxruntime", providers=["CPUExecutionProvider"])
            got = dict(zip([o.name for o in session.outputs], session.run(sample)))
            results.append([got[t] for t in tensors])
        finally:
            probe.unlink(missing_ok=True)
    return {n: sqnr_db(r, q) for n, r, q in zip(names, *results)}
