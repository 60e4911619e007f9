"""``export_qnn``: a model -> QNN-ready QDQ ONNX (the ``qnn`` quantizer) -> offline QNN context binary, verified.

Steps: float ONNX through ``export_onnx`` (static shapes), quantization through ``quantize`` with the ``qnn``
backend (u8, u16, or the u8/u16 mix; skipped for fp16, which the HTP runs natively), the op check on QNN
with CPU fallback disabled, the offline context compile, then a reload of the context model on the QNN HTP
backend (x86 emulation) compared with torch FP32 and with the CPU QDQ run. Everything touching the HTP
runs in a child process. Also the QNN compiler check ``check()`` runs for targets that declare it.
"""
from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ... import data as ddata
from ..._io import output_lock, package_versions, publish, staging, update_manifest
from ...errors import CalibrationError, ConfigError, ToolchainError, UnsupportedOpError
from ...export._common import source_hash
from ...export.qnn import HtpComparison, QnnConfig, fix_static_shapes, htp_gate, htp_op_check, target_label
from ...export.result import ExportResult
from ...onnx_utils import onnx_inputs
from ...runtime import qnn_htp, qnn_provider
from .config import QnnQuantOptions, QuantConfig


def export_qnn(model_or_onnx: Any, config: QnnConfig | None = None, *, calibration: Any = None,
               eval_data: Any = None, example_inputs: Any = None, out: str | os.PathLike[str] = "build/qnn",
               name: str | None = None) -> ExportResult:
    """Quantize for QNN, compile an offline HTP context binary, reload it on QNN HTP and check it against FP32."""
    config = config or QnnConfig()
    provider = config.provider()
    qnn_provider.ensure_qnn()
    if config.activations != "fp16" and calibration is None:
        raise CalibrationError(f"QNN {config.activations} quantization needs calibration data; pass calibration= "
                               "samples shaped like the model input (e.g. data.x_train[:256]) or use "
                               "activations='fp16'")
    t_start = time.perf_counter()
    with output_lock(out) as folder, staging(folder) as stage, _progress() as step:
        step("ONNX export")
        fp32, module, base, example, onnx_parity = _float_onnx(model_or_onnx, example_inputs, calibration, config,
                                                               stage, name)
        specs = onnx_inputs(fp32)
        batch = specs[0].shape[0] or 1
        eval_feeds, labels = ddata.labelled_feeds(eval_data if eval_data is not None else calibration, specs)
        eval_feeds = _limit([f for e in eval_feeds for f in _rebatch(e, batch)], config.eval_samples)
        reference = _reference(module, fp32, eval_feeds)
        files = [fp32.name]
        details: dict[str, Any] = {"target": target_label(provider), "soc_model": provider.get("soc_model"),
                                   "htp_arch": int(provider["htp_arch"]), "activations": config.activations,
                                   "onnx_vs_torch_max_abs": onnx_parity}
        if config.activations == "fp16":
            compiled_src = fp32
        else:
            step("QNN QDQ quantization (the qnn quantizer backend)")
            compiled_src = _quantize(fp32, config, calibration, stage, base, details)
            files.append(compiled_src.name)
        step("op check on QNN HTP (CPU fallback disabled)")
        htp_op_check(compiled_src, provider, module, example)
        step(f"offline context compile for {target_label(provider)}")
        ctx = stage / f"{base}_ctx.onnx"
        details["compile_s"] = qnn_htp.compile_context(compiled_src, ctx, provider, config.embed)
        files += [ctx.name] + ([f"{base}_ctx_qnn.bin"] if not config.embed else [])
        step("reload on QNN HTP and parity")
        htp = np.concatenate([r[0] for r in qnn_htp.run_on_htp(ctx, provider, eval_feeds)])
        first = np.concatenate([r[0] for r in qnn_htp.run_on_htp(compiled_src, provider, eval_feeds[:4])])
        details["context_vs_uncompiled_max_abs"] = float(np.abs(htp[:len(first)] - first).max())
        details.update(_figures(htp, reference, labels, config, compiled_src, eval_feeds))
        details["context_bytes"] = sum((stage / f).stat().st_size for f in files[files.index(ctx.name):])
        parity = htp_gate(htp, reference, _first_output(ctx), config, ctx.name,
                          HtpComparison(**details["vs_torch"]))
        hist = dict(sorted(Counter(n.op_type for n in _graph(compiled_src).node).items()))
        published = publish(stage, folder, files)
    details["total_s"] = time.perf_counter() - t_start
    cfg = {**asdict(config), "provider_options": provider}
    manifest = update_manifest(folder, "qnn", {
        "files": [ctx.name] + [p.name for p in published if p.name != ctx.name],
        "source": {"model": type(model_or_onnx).__name__ if module is not None else str(model_or_onnx),
                   "sha256": source_hash(model_or_onnx)},
        "config": cfg, "details": details, "parity": parity.to_dict(), "op_histogram": hist,
        "versions": package_versions("onnx", "onnxruntime", "onnxruntime-qnn"),
        "note": "latencies on this machine are x86 emulation of the HTP, not device timings",
    })
    return ExportResult(path=folder / ctx.name, format="qnn", files=tuple(published), parity=parity,
                        op_histogram=hist, config=cfg, details=details, manifest=manifest)


def _float_onnx(model_or_onnx: Any, example_inputs: Any, calibration: Any, config: QnnConfig, stage: Path,
                name: str | None) -> tuple[Path, Any, str, Any, float | None]:
    """Static-shape float ONNX in ``stage`` (exported or copied), the module, a base name, example, ONNX parity."""
    from ...errors import ArtifactError
    from ...export._common import default_name, safe_name
    from ...export.onnx import OnnxConfig, export_onnx

    if isinstance(model_or_onnx, (str, Path)):
        src = Path(model_or_onnx)
        if not src.is_file() or src.suffix.lower() != ".onnx":
            raise ArtifactError(f"{src} is not an ONNX file; pass a torch nn.Module or an existing .onnx path")
        base = safe_name(name or src.stem, "name")
        dest = stage / f"{base}.onnx"
        shutil.copyfile(src, dest)
        fix_static_shapes(dest)
        return dest, None, base, None, None
    if example_inputs is None:
        first = ddata.first_inputs(calibration, "calibration")
        if first is None:
            raise ConfigError("pass example_inputs (a tensor shaped like one model input, batch first) to export "
                              "the model")
        example_inputs = first
    base = safe_name(name, "name") if name is not None else default_name(model_or_onnx)
    res = export_onnx(model_or_onnx, example_inputs, OnnxConfig(opset=config.opset), out=stage / "onnx", name=base)
    dest = stage / res.path.name
    os.replace(res.path, dest)
    fix_static_shapes(dest)
    return dest, model_or_onnx, base, example_inputs, res.parity.max_abs if res.parity else None


def _quantize(fp32: Path, config: QnnConfig, calibration: Any, stage: Path, base: str,
              details: dict[str, Any]) -> Path:
    """QDQ ONNX through the ``qnn`` quantizer backend (the one QNN quantization)."""
    from .api import quantize

    qconfig = QuantConfig(mode="int8-static", backend="qnn", per_channel=config.weights == "s8",
                          calibration_samples=config.calibration_samples,
                          qnn=QnnQuantOptions(activations=config.activations, accuracy_budget=config.accuracy_budget))
    res = quantize(fp32, qconfig, calibration=calibration, out=stage / "quant", per_layer=False, latency=False)
    if res.mixed is not None:
        details["mixed"] = {"u16_activations": list(res.mixed.u16_tensors), "activations": res.mixed.n_activations,
                            "calibration_agreement": res.mixed.agreement, "tried": res.mixed.tried}
    dest = stage / f"{base}_qdq.onnx"
    os.replace(res.path, dest)
    return dest


def _reference(module: Any, fp32: Path, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    if module is None:
        from .qnn_qdq import run_cpu

        return run_cpu(fp32, feeds)[0]
    import torch

    from ...export._common import torch_outputs

    batch = [torch.from_numpy(np.concatenate([f[k] for f in feeds])) for k in feeds[0]]
    return torch_outputs(module, batch)[0]


def _figures(htp: np.ndarray, reference: np.ndarray, labels: np.ndarray | None, config: QnnConfig,
             compiled_src: Path, feeds: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    from .qnn_qdq import run_cpu

    fig: dict[str, Any] = {"eval_samples": int(len(htp)), "vs_torch": asdict(HtpComparison.of(htp, reference))}
    if config.activations != "fp16":
        cpu = run_cpu(compiled_src, feeds)[0]
        fig["vs_cpu_qdq"] = asdict(HtpComparison.of(htp, cpu))
        fig["cpu_qdq_vs_torch"] = asdict(HtpComparison.of(cpu, reference))
    if labels is not None and len(labels) >= len(htp):
        y = labels[:len(htp)]
        fig["top1"] = {"htp": float(np.mean(htp.argmax(-1) == y)), "torch": float(np.mean(reference.argmax(-1) == y))}
    return fig


def _first_output(path: Path) -> str:
    return _graph(path).output[0].name


def _graph(path: Path) -> Any:
    import onnx

    return onnx.load(str(path), load_external_data=False).graph


def _limit(feeds: list[dict[str, np.ndarray]], samples: int) -> list[dict[str, np.ndarray]]:
    kept, seen = [], 0
    for f in feeds:
        if seen >= samples:
            break
        kept.append(f)
        seen += len(next(iter(f.values())))
    return kept


def _rebatch(feed: dict[str, np.ndarray], batch: int) -> list[dict[str, np.ndarray]]:
    n = len(next(iter(feed.values())))
    return [{k: v[i:i + batch] for k, v in feed.items()} for i in range(0, n - batch + 1, batch)]


def _progress() -> Any:
    """A context manager yielding ``step(description)``, shown with rich while the export runs."""
    import contextlib

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    @contextlib.contextmanager
    def run() -> Any:
        with Progress(SpinnerColumn(), TextColumn("[bold]QNN[/] {task.description}"), TimeElapsedColumn(),
                      transient=True) as progress:
            task = progress.add_task("starting", total=None)
            yield lambda text: progress.update(task, description=text)

    return run()


def qnn_unsupported_ops(model_or_onnx: Any, example_inputs: Any = None,
                        config: QnnConfig | None = None) -> list[qnn_provider.UnsupportedNode]:
    """Nodes QNN HTP would reject (op type, node, torch module, reason); empty when the whole graph runs on QNN.

    The graph is exported and quantized as ``export_qnn`` would (calibrated on ``example_inputs`` only: op
    support does not depend on the ranges) and opened on QNN HTP with CPU fallback disabled, in a child process.
    """
    import tempfile

    config = config or QnnConfig(activations="u8")
    provider = config.provider()
    qnn_provider.ensure_qnn()
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        fp32, module, base, example, _ = _float_onnx(model_or_onnx, example_inputs, None, config, stage, None)
        graph = fp32
        if config.activations != "fp16":
            specs = onnx_inputs(fp32)
            calib = example if example is not None else [np.zeros([d or 1 for d in s.shape], s.dtype) for s in specs]
            graph = _quantize(fp32, QnnConfig(soc_model=config.soc_model, htp_arch=config.htp_arch,
                                              activations="u16" if config.activations == "u16" else "u8",
                                              weights=config.weights), calib, stage, base, {})
        try:
            htp_op_check(graph, provider, module, example)
        except UnsupportedOpError as exc:
            return list(getattr(exc, "nodes", []))
    return []


def qnn_compiler_check(model_or_path: Any, input_shape: Any, target: Any) -> Any:
    """The QNN HTP compiler verdict for ``check()`` (entry point ``edgedeploy.compilers: qnn``)."""
    from ...targets.report import Verdict

    example = None
    if not isinstance(model_or_path, (str, Path)):
        import torch

        example = torch.zeros(tuple(input_shape))
    try:
        bad = qnn_unsupported_ops(model_or_path, example)
    except ToolchainError as exc:
        if "crashed" in str(exc):
            return Verdict("ops", False, "crash", 0, "nodes", str(exc))
        return Verdict("ops", None, None, None, "nodes", f"unknown: QNN HTP op check not run ({exc})", unknown=True)
    if not bad:
        return Verdict("ops", True, 0, 0, "nodes", "every node runs on QNN HTP (checked on the HTP backend with CPU "
                                                    "fallback disabled)")
    return Verdict("ops", False, len(bad), 0, "nodes", "QNN HTP rejects " + "; ".join(n.describe() for n in bad))
