"""quantize(): one verb over every quantizer backend, with a verified before/after report."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import ensure_dir, package_versions, update_manifest
from ...errors import ArtifactError, CalibrationError, ConfigError, ModelRunError
from . import data as qdata
from . import graph
from .config import QuantConfig
from .keep_float import choose_float_layers
from .registry import Artifact, Job, Quantizer, get_quantizer, names_of
from .report import LayerReport, QuantReport, energy_pj


@dataclass
class QuantResult:
    """The quantized artifact (``path``; ``model`` is the torch module when there is one) and its report."""

    model: Any
    path: Path
    report: QuantReport
    config: QuantConfig
    onnx_path: Path | None = None
    fp32_onnx: Path | None = None

    def __str__(self) -> str:
        return f"{self.path}\n{self.report}"


def quantize(model_or_onnx: Any, config: QuantConfig | None = None, calibration: Any = None,
             eval_data: Any = None, train_data: Any = None, example_inputs: Any = None,
             out: str | Path | None = None, per_layer: bool = True, latency: bool = True) -> QuantResult:
    """Quantize a torch module or ONNX file with ``config``; measure size, accuracy, latency, energy, layer error."""
    config = config or QuantConfig()
    quantizer = get_quantizer(config.backend, config.mode)
    quantizer.check(config)
    out_dir = ensure_dir(out) if out is not None else Path(tempfile.mkdtemp(prefix="edgedeploy-quant-"))
    module, fp32_onnx = _float_onnx(model_or_onnx, example_inputs, eval_data, calibration, out_dir, config)
    specs = qdata.onnx_inputs(fp32_onnx)
    calib = qdata.to_feeds(calibration, specs, "calibration", limit=config.calibration_samples)
    if (config.mode in quantizer.calibrated_modes or config.keep_float) and not calib:
        needs = f"mode {config.mode!r}" if config.mode in quantizer.calibrated_modes else "keep_float"
        raise CalibrationError(f"{needs} needs calibration data: pass calibration= a few hundred representative "
                               "inputs (tensor/array, (x, y) pair, batches or a DataLoader), not your test set")
    import onnx

    layers = graph.layers(onnx.load(str(fp32_onnx)))
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
    if note:
        report.notes.append(note)
    report.to_json(out_dir / "quant_report.json")
    files = [p.name for p in (artifact.path, artifact.path.with_suffix(".bin"), artifact.onnx_path,
                              out_dir / "quant_report.json") if p is not None and p.exists()]
    update_manifest(out_dir, f"quantize-{config.mode}-{config.backend}",
                    {"files": sorted(set(files)), "config": config.to_dict(), "source": str(model_or_onnx)[:200],
                     "versions": package_versions("onnx", "onnxruntime", "openvino", "nncf")})
    return QuantResult(artifact.module if artifact.module is not None else artifact.path, artifact.path, report,
                       config, artifact.onnx_path, fp32_onnx)


def _float_onnx(source: Any, example: Any, eval_data: Any, calibration: Any, out: Path,
                config: QuantConfig) -> tuple[Any, Path]:
    """(torch module or None, FP32 ONNX path) for the user's model or file."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.suffix.lower() != ".onnx" or not path.is_file():
            raise ArtifactError(f"{path} is not an existing .onnx file; pass a torch nn.Module or an ONNX file")
        return None, path
    import torch

    if not isinstance(source, torch.nn.Module):
        raise ConfigError(f"cannot quantize a {type(source).__name__}; pass a torch nn.Module or an .onnx path")
    if example is None:
        example = _first_input(eval_data) if eval_data is not None else _first_input(calibration)
    if example is None:
        raise CalibrationError("cannot tell the model's input shape: pass example_inputs=, calibration= or eval_data=")
    args = example if isinstance(example, (tuple, list)) else (example,)
    names = ["input"] if len(args) == 1 else [f"input{i}" for i in range(len(args))]
    feed = {n: np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a)[:1] for n, a in zip(names, args)}
    from ...export.onnx import OnnxConfig, export_onnx

    # the TorchScript exporter folds BatchNorm and names nodes after module paths (used for `ignored`);
    # export_onnx checks the file and its parity against torch
    tensors = tuple(torch.from_numpy(np.ascontiguousarray(feed[n])) for n in names)
    try:
        with torch.no_grad():
            probe = source.eval()(*tensors)
    except Exception as exc:  # noqa: BLE001 - the user's forward failed on the given input
        shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
        raise ModelRunError(f"{type(source).__name__} fails on an input of shape {shapes}: {exc}; pass "
                            "example_inputs (or data) shaped like the model's real input") from exc
    outs = ["output"] if not isinstance(probe, (tuple, list)) else [f"output{i}" for i in range(len(probe))]
    onnx_cfg = OnnxConfig(exporter="torchscript", opset=config.opset, input_names=tuple(names),
                          output_names=tuple(outs), dynamic_axes={n: {0: "batch"} for n in [*names, *outs]})
    return source, export_onnx(source, tensors, onnx_cfg, out=out, name="model_fp32").path


def _first_input(data: Any) -> Any:
    if data is None:
        return None
    if hasattr(data, "x_test"):
        return data.x_test
    if hasattr(data, "shape"):
        return data
    first = data[0] if isinstance(data, (tuple, list)) and data else next(iter(data), None)
    if isinstance(data, tuple) and len(data) == 2 and hasattr(first, "shape"):
        return first                                    # an (x, y) pair
    if isinstance(first, (tuple, list)):
        return first[0]                                 # a list/loader of (x, y) batches
    return first


def _resolve_ignored(names: tuple[str, ...], layers: list[graph.Layer]) -> list[graph.Layer]:
    by_name = {ly.name: ly for ly in layers} | {ly.module: ly for ly in layers}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"ignored layer(s) {', '.join(map(repr, unknown))} not found in the model; quantizable "
                          f"layers are: {names_of(ly.module + ' (' + ly.name + ')' for ly in layers)}")
    return [by_name[n] for n in names]


def _run_all(session: Any, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    outs = [session.run(f) for f in feeds]
    return [qdata.concat([o[i] for o in outs]) for i in range(len(outs[0]))]


def _measure(quantizer: Quantizer, job: Job, artifact: Artifact, layers: list[graph.Layer], eval_data: Any,
             specs: list[qdata.InputSpec], per_layer: bool, latency: bool) -> QuantReport:
    """Size, accuracy/output error, latency and energy before/after, plus per-layer SQNR."""
    from ...runtime import benchmark

    cfg = job.config
    base = quantizer.baseline(job.fp32_onnx, job.out)
    report = QuantReport(cfg.mode, cfg.backend, graph.file_size(base), graph.file_size(artifact.path),
                         threads=cfg.threads)
    feeds, labels = qdata.eval_split(eval_data, specs)
    feeds = feeds or job.calibration[:4]
    run_b, run_q = quantizer.session(base, cfg.threads), quantizer.session(artifact.path, cfg.threads)
    if feeds:
        yb, yq = _run_all(run_b, feeds)[0], _run_all(run_q, feeds)[0]
        report.output_max_abs_error = float(np.max(np.abs(yb.astype(np.float64) - yq)))
        a, b = yb.reshape(len(yb), -1).astype(np.float64), yq.reshape(len(yq), -1).astype(np.float64)
        cos = np.sum(a * b, 1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
        report.output_cosine, report.output_cosine_min = float(cos.mean()), float(cos.min())
        if labels is not None:
            report.accuracy_before = float(100.0 * np.mean(yb.argmax(-1) == labels))
            report.accuracy_after = float(100.0 * np.mean(yq.argmax(-1) == labels))
    if feeds and latency:
        one = {k: v[:1] for k, v in feeds[0].items()}
        report.latency_before_ms = benchmark(run_b, one, warmup=5, repeats=cfg.latency_repeats).median_ms
        report.latency_after_ms = benchmark(run_q, one, warmup=5, repeats=cfg.latency_repeats).median_ms
    matched = graph.match_outputs(layers, artifact.onnx_path) if artifact.onnx_path and per_layer else {}
    low = "fp16" if cfg.mode == "fp16" else "int8"
    sqnr = _layer_sqnr(job, artifact, matched, feeds) if matched and feeds else {}
    for layer in layers:
        quantized = matched[layer.name][1] if layer.name in matched and low == "int8" else (
            layer.name not in job.ignored_nodes)
        precision = low if quantized else "fp32"
        report.layers.append(LayerReport(layer.name, layer.op, layer.module, layer.macs, precision,
                                         energy_pj(layer.macs, precision), sqnr.get(layer.name)))
    report.energy_before_pj = sum(energy_pj(ly.macs, "fp32") for ly in layers)
    report.energy_after_pj = sum(ly.energy_pj for ly in report.layers)
    if cfg.backend == "openvino":
        report.notes.append("OpenVINO runs with INFERENCE_PRECISION_HINT=f32 (this CPU would otherwise use bf16)")
    if cfg.mode == "fp16" and cfg.backend == "openvino":
        report.notes.append("FP16 IR: weights stored in fp16, decompressed for CPU (a MyriadX VPU computes in fp16)")
    return report


def _layer_sqnr(job: Job, artifact: Artifact, matched: dict[str, tuple[str, bool]],
                feeds: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """SQNR (dB) of every layer's output in the quantized ONNX twin vs the FP32 model, on up to 64 samples."""
    import onnx
    import onnxruntime as ort

    names = list(matched)
    fp32_out = {n.name: n.output[0] for n in onnx.load(str(job.fp32_onnx)).graph.node}
    sample = {k: v[:64] for k, v in feeds[0].items()}
    results = []
    for src, tensors, tag in ((job.fp32_onnx, [fp32_out[n] for n in names], "fp32"),
                              (artifact.onnx_path, [matched[n][0] for n in names], "q")):
        probe = graph.probe_outputs(src, tensors, job.out / f"_probe_{tag}.onnx")
        try:
            so = ort.SessionOptions()
            so.log_severity_level = 3
            sess = ort.InferenceSession(str(probe), so, providers=["CPUExecutionProvider"])
            results.append(sess.run(tensors, sample))
        finally:
            probe.unlink(missing_ok=True)
    return {n: graph.sqnr_db(r, q) for n, r, q in zip(names, *results)}
