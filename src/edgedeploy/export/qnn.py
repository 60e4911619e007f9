"""``export_qnn``: a model -> QNN-ready QDQ ONNX -> offline QNN context binary for a Snapdragon SoC, verified on HTP.

Steps: ONNX through ``export_onnx`` (static shapes), QNN preprocessing and QDQ quantization (u8, u16, a
u8/u16 mix chosen by sensitivity, or fp16 on the HTP), the op check on QNN with CPU fallback disabled,
the offline context compile, then a reload of the context model on the QNN HTP backend (x86 emulation)
compared with torch FP32 and with the CPU QDQ run: max abs error and agreement (top-1 class for logits;
for other outputs, the share of samples within 5% relative L2 error).
"""
from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import package_versions, update_manifest
from ..errors import CalibrationError, ConfigError, ParityError, UnsupportedOpError
from . import qnn_ep
from ._common import publish, source_hash, staging
from .result import ExportResult, Parity

ACTIVATIONS = ("u8", "u16", "mixed", "fp16")


@dataclass(frozen=True)
class QnnConfig:
    """Target SoC and precision for a QNN HTP context binary; the defaults suit a Snapdragon 8 Gen 3 phone."""

    soc_model: str | int | None = "SM8650"    # part name or QNN soc_model id; sets the HTP arch to compile for
    htp_arch: int | None = None               # None: the SoC's arch; give it alone to compile without a SoC
    # u8 | u16 | fp16 | mixed (u8 with the noisiest activations in u16 until accuracy_budget is met)
    activations: str = "mixed"
    weights: str = "u8"                       # u8 (QNN's default) or s8 (symmetric per-channel)
    embed: bool = True                        # context binary inside the _ctx.onnx, or beside it as _qnn.bin
    accuracy_budget: float = 0.99             # mixed: agreement with FP32 the u8/u16 mix must reach
    min_agreement: float = 0.9                # gate: the HTP run must agree with FP32 on this share of samples
    rtol: float = 0.5                         # gate: max abs error <= rtol * max|FP32 output| (quantized logits)
    calibration_samples: int = 256
    eval_samples: int = 200
    opset: int | None = None                  # None: the exporter's default (u16 QDQ raises it to 21 anyway)
    performance_mode: str | None = None       # htp_performance_mode, e.g. "burst" (None: the EP default)
    provider_options: dict[str, Any] = field(default_factory=dict)  # more QNN provider options, validated

    def __post_init__(self) -> None:
        if self.activations not in ACTIVATIONS:
            raise ConfigError(f"unknown QNN activations {self.activations!r}; choose one of {', '.join(ACTIVATIONS)}")
        if self.weights not in ("u8", "s8"):
            raise ConfigError(f"unknown QNN weights {self.weights!r}; choose u8 or s8")
        if self.soc_model is None and self.htp_arch is None:
            raise ConfigError("give a soc_model (e.g. 'SM8650') or an htp_arch (e.g. 75) to compile the context for")
        if self.activations == "fp16" and self.soc_model is None:
            raise ConfigError("activations='fp16' needs a soc_model (the HTP backend rejects fp16 without it)")
        for name in ("accuracy_budget", "min_agreement"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} is a fraction of samples in [0, 1] (got {getattr(self, name)})")
        if self.rtol < 0 or self.calibration_samples < 1 or self.eval_samples < 1:
            raise ConfigError("rtol must be >= 0 and calibration_samples/eval_samples >= 1")
        self.provider()                       # validates SoC, arch and option keys now, not at compile time

    def provider(self) -> dict[str, str]:
        """The validated QNN provider options this config compiles and runs with."""
        opts: dict[str, Any] = dict(self.provider_options)
        arch = None
        if self.soc_model is not None:
            name, sid, arch = qnn_ep.resolve_soc(self.soc_model)
            opts["soc_model"] = sid
        if self.htp_arch is not None:
            given = qnn_ep.check_htp_arch(self.htp_arch)
            if arch is not None and given != arch:
                raise ConfigError(f"htp_arch {given} does not match soc_model {self.soc_model} (HTP v{arch}); "
                                  "drop htp_arch or pick the matching SoC")
            arch = given
        opts["htp_arch"] = arch
        if self.performance_mode is not None:
            opts["htp_performance_mode"] = self.performance_mode
        if self.activations == "fp16":
            opts["enable_htp_fp16_precision"] = "1"
        return qnn_ep.validate_provider_options(opts)


def export_qnn(model_or_onnx: Any, config: QnnConfig | None = None, calibration: Any = None,
               example_inputs: Any = None, evaluation: Any = None, out: str | os.PathLike[str] = "build/qnn",
               name: str | None = None) -> ExportResult:
    """Quantize for QNN, compile an offline HTP context binary, reload it on QNN HTP and check it against FP32."""
    from ..compress.quantize.data import eval_split, onnx_inputs, to_feeds
    from . import qnn_quant

    config = config or QnnConfig()
    provider = config.provider()
    qnn_ep.ensure_qnn()
    if config.activations != "fp16" and calibration is None:
        raise CalibrationError(f"QNN {config.activations} quantization needs calibration data; pass calibration="
                               "samples shaped like the model input (e.g. data.x_train[:256]) or use "
                               "activations='fp16'")
    out = Path(out)
    t_start = time.perf_counter()
    with staging(out) as stage, _progress() as step:
        step("ONNX export")
        fp32, torch_model, base, example, onnx_parity = _float_onnx(model_or_onnx, example_inputs, calibration,
                                                                    config, stage, name)
        specs = onnx_inputs(fp32)
        batch = specs[0].shape[0] or 1
        calib = _limit(to_feeds(calibration, specs, "calibration", batch_size=batch), config.calibration_samples)
        eval_feeds, labels = eval_split(evaluation if evaluation is not None else calibration, specs)
        eval_feeds = _limit([f for e in eval_feeds for f in _rebatch(e, batch)], config.eval_samples)
        reference = _reference(torch_model, fp32, eval_feeds)
        files = [fp32.name]
        details: dict[str, Any] = {"target": _target_label(provider), "soc_model": provider.get("soc_model"),
                                   "htp_arch": int(provider["htp_arch"]), "activations": config.activations,
                                   "onnx_vs_torch_max_abs": onnx_parity}
        if config.activations == "fp16":
            compiled_src = fp32
        else:
            step("QNN QDQ quantization")
            pre = qnn_quant.preprocess(fp32, stage / f"{base}_pre.onnx")
            compiled_src = stage / f"{base}_qdq.onnx"
            if config.activations == "mixed":
                choice = qnn_quant.choose_mixed(pre, compiled_src, calib, calib, config.accuracy_budget, config.weights)
                details["mixed"] = {"u16_activations": list(choice.u16_tensors), "activations": choice.n_activations,
                                    "calibration_agreement": choice.agreement, "tried": choice.tried}
            else:
                qnn_quant.quantize_qdq(pre, compiled_src, calib, config.activations, config.weights)
            pre.unlink()
            files.append(compiled_src.name)
        step("op check on QNN HTP (CPU fallback disabled)")
        try:
            uncompiled = qnn_ep.open_session(compiled_src, provider)
        except UnsupportedOpError as exc:
            raise _with_origins(exc, torch_model, example, config, compiled_src.name) from exc
        step(f"offline context compile for {_target_label(provider)}")
        ctx = stage / f"{base}_ctx.onnx"
        details["compile_s"] = _compile(compiled_src, ctx, provider, config.embed)
        files += [ctx.name] + ([f"{base}_ctx_qnn.bin"] if not config.embed else [])
        step("reload on QNN HTP and parity")
        session = qnn_ep.open_session(ctx, provider)
        htp = _run(session, eval_feeds)
        first = _run(uncompiled, eval_feeds[:4])          # the compiled context must match the uncompiled graph
        details["context_vs_uncompiled_max_abs"] = float(np.abs(htp[:len(first)] - first).max())
        details.update(_figures(htp, reference, labels, config, compiled_src, eval_feeds))
        details["context_bytes"] = sum((stage / f).stat().st_size for f in files[files.index(ctx.name):])
        parity = _gate(htp, reference, session.get_outputs()[0].name, config, ctx.name, details)
        hist = dict(sorted(Counter(n.op_type for n in _graph(compiled_src).node).items()))
        published = publish(stage, out, files)
    details["total_s"] = time.perf_counter() - t_start
    cfg = {**asdict(config), "provider_options": provider}
    manifest = update_manifest(out, "qnn", {
        "files": [p.name for p in published],
        "source": {"model": type(model_or_onnx).__name__ if torch_model is not None else str(model_or_onnx),
                   "sha256": source_hash(model_or_onnx)},
        "config": cfg, "details": details, "parity": parity.to_dict(), "op_histogram": hist,
        "versions": package_versions("onnx", "onnxruntime", "onnxruntime-qnn"),
        "note": "latencies on this machine are x86 emulation of the HTP, not device timings",
    })
    return ExportResult(path=out / ctx.name, format="qnn", files=tuple(published), parity=parity, op_histogram=hist,
                        config=cfg, details=details, manifest=manifest)


def compile_qnn_context(onnx_path: str | os.PathLike[str], dest: str | os.PathLike[str], config: QnnConfig) -> Path:
    """Compile a QDQ (or, with fp16, a float) ONNX model into a QNN context model ``dest`` (``*_ctx.onnx``)."""
    provider = config.provider()
    qnn_ep.open_session(onnx_path, provider)          # the op check: names every node QNN rejects
    dest = Path(dest)
    with staging(dest.parent) as stage:
        tmp = stage / dest.name
        _compile(Path(onnx_path), tmp, provider, config.embed)
        names = [tmp.name] + ([] if config.embed else [f"{tmp.stem}_qnn.bin"])
        publish(stage, dest.parent, names)
    return dest


def qnn_unsupported_ops(model_or_onnx: Any, example_inputs: Any = None,
                        config: QnnConfig | None = None) -> list[qnn_ep.UnsupportedNode]:
    """Nodes QNN HTP would reject (op type, node, torch module, reason); empty when the whole graph runs on QNN.

    The graph is quantized as ``config`` asks (calibrated on ``example_inputs`` only: op support does not
    depend on the ranges) and opened on QNN HTP with CPU fallback disabled, the check ``export_qnn`` runs.
    """
    import tempfile

    from ..compress.quantize.data import onnx_inputs, to_feeds
    from . import qnn_quant

    config = config or QnnConfig(activations="u8")
    provider = config.provider()
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        fp32, module, base, example, _ = _float_onnx(model_or_onnx, example_inputs, None, config, stage, None)
        graph = fp32
        if config.activations != "fp16":
            specs = onnx_inputs(fp32)
            feeds = to_feeds(example if example is not None else _zeros(specs), specs, "example", batch_size=1)
            pre = qnn_quant.preprocess(fp32, stage / f"{base}_pre.onnx")
            graph = qnn_quant.quantize_qdq(pre, stage / f"{base}_qdq.onnx", feeds,
                                           "u16" if config.activations == "u16" else "u8", config.weights)
        try:
            qnn_ep.open_session(graph, provider)
        except UnsupportedOpError as exc:
            return list(getattr(_with_origins(exc, module, example, config, graph.name), "nodes", []))
    return []


def _zeros(specs: list[Any]) -> dict[str, np.ndarray]:
    return {s.name: np.zeros([d or 1 for d in s.shape], dtype=s.dtype) for s in specs}


# ---- steps ----------------------------------------------------------------------------------------
def _float_onnx(model_or_onnx: Any, example_inputs: Any, calibration: Any, config: QnnConfig, stage: Path,
                name: str | None) -> tuple[Path, Any, str, Any, float | None]:
    """Static-shape float ONNX in ``stage`` (exported or copied), the module, a base name, example, ONNX parity."""
    from ..errors import ArtifactError

    if isinstance(model_or_onnx, (str, Path)):
        src = Path(model_or_onnx)
        if not src.is_file() or src.suffix.lower() != ".onnx":
            raise ArtifactError(f"{src} is not an ONNX file; pass a torch nn.Module or an existing .onnx path")
        base = name or src.stem
        dest = stage / f"{base}.onnx"
        shutil.copyfile(src, dest)
        _fix_shapes(dest)
        return dest, None, base, None, None
    from .onnx import OnnxConfig, export_onnx

    if example_inputs is None:
        example_inputs = _first_sample(calibration)
    base = name or type(model_or_onnx).__name__.lower()
    res = export_onnx(model_or_onnx, example_inputs, OnnxConfig(opset=config.opset), out=stage / "onnx", name=base)
    dest = stage / res.path.name
    os.replace(res.path, dest)
    _fix_shapes(dest)
    return dest, model_or_onnx, base, example_inputs, res.parity.max_abs if res.parity else None


def _with_origins(exc: UnsupportedOpError, model: Any, example: Any, config: QnnConfig,
                  artifact: str) -> UnsupportedOpError:
    """Name the torch module of each rejected node, from an unsimplified export's name scopes (by op type)."""
    import tempfile
    from dataclasses import replace

    from .onnx import OnnxConfig, export_onnx

    nodes = list(getattr(exc, "nodes", []))
    if model is None or all(n.module for n in nodes):
        return exc
    with tempfile.TemporaryDirectory() as tmp:
        raw = export_onnx(model, example, OnnxConfig(opset=config.opset, simplify=False), out=tmp, name="origins")
        by_op: dict[str, list[str]] = {}
        for node in _graph(raw.path).node:
            module = qnn_ep.torch_module_of(node)
            if module and module not in by_op.setdefault(node.op_type, []):
                by_op[node.op_type].append(module)
    named = [n if n.module or n.op_type not in by_op else replace(n, module=" or ".join(by_op[n.op_type]))
             for n in nodes]
    return qnn_ep.unsupported_error(named, artifact)


def _first_sample(calibration: Any) -> Any:
    data = getattr(calibration, "x_train", calibration)
    if isinstance(data, (list, tuple)) and data:
        data = data[0][0] if isinstance(data[0], (list, tuple)) else data[0]
    if not hasattr(data, "shape") or len(data) == 0:
        raise ConfigError("pass example_inputs (a tensor shaped like one model input, batch first) to export the model")
    return data[:1]


def _fix_shapes(path: Path) -> None:
    """QNN needs static shapes: pin symbolic dims (the batch) to 1."""
    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

    model = onnx.load(str(path))
    params = {d.dim_param for i in model.graph.input for d in i.type.tensor_type.shape.dim if d.dim_param}
    if not params:
        return
    for p in params:
        make_dim_param_fixed(model.graph, p, 1)
    fix_output_shapes(model)
    onnx.save(model, str(path))


def _compile(src: Path, dest: Path, provider: dict[str, str], embed: bool) -> float:
    import onnxruntime as ort

    from ..errors import ExportError

    so = qnn_ep.session_options(provider)
    t0 = time.perf_counter()
    try:
        ort.ModelCompiler(so, str(src), embed_compiled_data_into_model=embed).compile_to_file(str(dest))
    except Exception as exc:  # noqa: BLE001 - pybind error types
        raise ExportError(f"QNN context compile of {src.name} for {_target_label(provider)} failed: "
                          f"{str(exc).strip()[:300]}; check the op check passes and the SoC/arch pair") from exc
    if not dest.is_file():
        raise ExportError(f"QNN context compile of {src.name} wrote no {dest.name}; rerun with --debug")
    return time.perf_counter() - t0


def _run(session: Any, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    """First output of ``session`` over feeds, concatenated along the batch."""
    return np.concatenate([session.run(None, feed)[0] for feed in feeds])


def _reference(torch_model: Any, fp32: Path, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    if torch_model is None:
        from .qnn_quant import run_cpu

        return run_cpu(fp32, feeds)[0]
    import torch

    batch = [torch.from_numpy(np.concatenate([f[k] for f in feeds])) for k in feeds[0]]
    with torch.inference_mode():
        out = torch_model(*batch)
    return (out[0] if isinstance(out, (tuple, list)) else out).numpy()


def _figures(htp: np.ndarray, reference: np.ndarray, labels: np.ndarray | None, config: QnnConfig,
             compiled_src: Path, feeds: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    from .qnn_quant import agreement, run_cpu

    fig: dict[str, Any] = {"eval_samples": int(len(htp)),
                           "vs_torch": {"max_abs": float(np.abs(htp - reference).max()),
                                        "agreement": agreement(htp, reference)}}
    if config.activations != "fp16":
        cpu = run_cpu(compiled_src, feeds)[0]
        fig["vs_cpu_qdq"] = {"max_abs": float(np.abs(htp - cpu).max()), "agreement": agreement(htp, cpu)}
        fig["cpu_qdq_vs_torch"] = {"max_abs": float(np.abs(cpu - reference).max()),
                                   "agreement": agreement(cpu, reference)}
    if labels is not None and len(labels) >= len(htp):
        y = labels[:len(htp)]
        fig["top1"] = {"htp": float(np.mean(htp.argmax(-1) == y)), "torch": float(np.mean(reference.argmax(-1) == y))}
    return fig


def _gate(htp: np.ndarray, reference: np.ndarray, output: str, config: QnnConfig, artifact: str,
          details: dict[str, Any]) -> Parity:
    scale = float(np.abs(reference).max())
    err = details["vs_torch"]["max_abs"]
    agree = details["vs_torch"]["agreement"]
    hint = ("try activations='u16' (or 'mixed' with a higher accuracy_budget), more calibration samples, or "
            "weights='s8'")
    if agree < config.min_agreement:
        raise ParityError(f"{artifact} on QNN HTP agrees with FP32 torch on only {agree:.1%} of "
                          f"{len(htp)} samples (min_agreement {config.min_agreement:.0%}); {hint}")
    if err > config.rtol * scale:
        raise ParityError(f"output {output!r} of {artifact} on QNN HTP differs from FP32 torch by max abs {err:.3g}, "
                          f"over rtol {config.rtol} x max|ref| {scale:.3g}; {hint}")
    return Parity(reference="torch", runtime="qnn-htp (x86 emulation)", max_abs=err, max_rel=err / max(scale, 1e-12),
                  atol=0.0, rtol=config.rtol, outputs={output: {"max_abs": err, "max_rel": err / max(scale, 1e-12),
                                                                "ref_max": scale, "agreement": agree}})


# ---- small helpers --------------------------------------------------------------------------------
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


def _graph(path: Path) -> Any:
    import onnx

    return onnx.load(str(path), load_external_data=False).graph


def _target_label(provider: dict[str, str]) -> str:
    soc = next((n for n, (i, _) in qnn_ep.socs().items() if str(i) == provider.get("soc_model")), None)
    return f"{soc + ', ' if soc else ''}HTP v{provider['htp_arch']}"


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
