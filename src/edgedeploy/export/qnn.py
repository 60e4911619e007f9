"""QNN HTP (Qualcomm Snapdragon) compile step: an offline context binary from a QNN-ready ONNX, and its checks.

``compile_qnn_context`` opens the QDQ (or float, for fp16) ONNX on the QNN HTP backend with CPU fallback
disabled (the op check, naming every rejected node and its torch module), compiles an offline context binary
for the SoC's HTP arch, and ``htp_figures`` compares the reloaded context with FP32 and with the CPU QDQ run.
Everything that touches the HTP runs in a child process (``runtime.qnn_htp``). The full flow
(quantize through the ``qnn`` quantizer, then compile and verify) is ``export_qnn`` in ``compress``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._io import output_lock, publish, staging
from ..errors import ConfigError, ParityError
from ..runtime import qnn_htp, qnn_provider
from .result import Parity

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
            _, sid, arch = qnn_provider.resolve_soc(self.soc_model)
            opts["soc_model"] = sid
        if self.htp_arch is not None:
            given = qnn_provider.check_htp_arch(self.htp_arch)
            if arch is not None and given != arch:
                raise ConfigError(f"htp_arch {given} does not match soc_model {self.soc_model} (HTP v{arch}); "
                                  "drop htp_arch or pick the matching SoC")
            arch = given
        opts["htp_arch"] = arch
        if self.performance_mode is not None:
            opts["htp_performance_mode"] = self.performance_mode
        if self.activations == "fp16":
            opts["enable_htp_fp16_precision"] = "1"
        return qnn_provider.validate_provider_options(opts)


def target_label(provider: dict[str, str]) -> str:
    """'SM8650, HTP v75' for a provider option dict."""
    soc = next((n for n, (i, _) in qnn_provider.socs().items() if str(i) == provider.get("soc_model")), None)
    return f"{soc + ', ' if soc else ''}HTP v{provider['htp_arch']}"


def fix_static_shapes(path: Path) -> None:
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


def htp_op_check(onnx_path: str | os.PathLike[str], provider: dict[str, str], module: Any = None,
                 example: Any = None) -> None:
    """Raise UnsupportedOpError naming every node (and torch module) QNN HTP rejects in ``onnx_path``."""
    nodes = qnn_htp.check_nodes(onnx_path, provider)
    if nodes:
        raise qnn_provider.unsupported_error(_name_modules(nodes, onnx_path, module, example), Path(onnx_path).name)


def _name_modules(nodes: list[Any], onnx_path: Any, module: Any, example: Any) -> list[Any]:
    """Fill in each rejected node's torch module: from the graph's name scopes, else an unsimplified export."""
    import tempfile

    import onnx

    from .onnx import OnnxConfig, export_onnx

    nodes = qnn_provider.with_modules(nodes, onnx_path)
    if module is None or example is None or all(n.module for n in nodes):
        return nodes
    with tempfile.TemporaryDirectory() as tmp:
        raw = export_onnx(module, example, OnnxConfig(simplify=False), out=tmp, name="origins")
        by_op: dict[str, list[str]] = {}
        for node in onnx.load(str(raw.path), load_external_data=False).graph.node:
            where = qnn_provider.torch_module_of(node)
            if where and where not in by_op.setdefault(node.op_type, []):
                by_op[node.op_type].append(where)
    return [n if n.module or n.op_type not in by_op else replace(n, module=" or ".join(by_op[n.op_type]))
            for n in nodes]


def compile_qnn_context(onnx_path: str | os.PathLike[str], dest: str | os.PathLike[str], config: QnnConfig) -> Path:
    """Compile a QDQ (or, with fp16, a float) ONNX model into a QNN context model ``dest`` (``*_ctx.onnx``)."""
    provider = config.provider()
    qnn_provider.ensure_qnn()
    htp_op_check(onnx_path, provider)
    dest = Path(dest)
    with output_lock(dest.parent) as folder, staging(folder) as stage:
        tmp = stage / dest.name
        qnn_htp.compile_context(onnx_path, tmp, provider, config.embed)
        publish(stage, folder, [tmp.name] + ([] if config.embed else [f"{tmp.stem}_qnn.bin"]))
    return dest


def agreement(a: np.ndarray, ref: np.ndarray, close_rel_l2: float = 0.05) -> float:
    """Share of samples that agree with ``ref``: same top-1 class for (N, classes) logits, else rel. L2 <= 5%."""
    if ref.ndim == 2 and ref.shape[-1] > 1:
        return float(np.mean(a.argmax(-1) == ref.argmax(-1)))
    a2, r2 = a.reshape(len(a), -1).astype(np.float64), ref.reshape(len(ref), -1).astype(np.float64)
    rel = np.linalg.norm(a2 - r2, axis=1) / np.maximum(np.linalg.norm(r2, axis=1), 1e-12)
    return float(np.mean(rel <= close_rel_l2))


@dataclass(frozen=True)
class HtpComparison:
    """One output compared with a reference: max abs error and agreement (see ``agreement``)."""

    max_abs: float
    agreement: float

    @classmethod
    def of(cls, got: np.ndarray, ref: np.ndarray) -> HtpComparison:
        """Compare ``got`` with ``ref`` (first output, batch first)."""
        return cls(float(np.abs(got.astype(np.float64) - ref).max()), agreement(got, ref))


def htp_gate(htp: np.ndarray, reference: np.ndarray, output: str, config: QnnConfig, artifact: str,
             vs_torch: HtpComparison) -> Parity:
    """The HTP parity gate: agreement with FP32 >= min_agreement and max abs <= rtol x max|FP32|."""
    scale = float(np.abs(reference).max())
    hint = ("try activations='u16' (or 'mixed' with a higher accuracy_budget), more calibration samples, or "
            "weights='s8'")
    if vs_torch.agreement < config.min_agreement:
        raise ParityError(f"{artifact} on QNN HTP agrees with FP32 torch on only {vs_torch.agreement:.1%} of "
                          f"{len(htp)} samples (min_agreement {config.min_agreement:.0%}); {hint}")
    if vs_torch.max_abs > config.rtol * scale:
        raise ParityError(f"output {output!r} of {artifact} on QNN HTP differs from FP32 torch by max abs "
                          f"{vs_torch.max_abs:.3g}, over rtol {config.rtol} x max|ref| {scale:.3g}; {hint}")
    rel = vs_torch.max_abs / max(scale, 1e-12)
    return Parity(reference="torch", runtime="qnn-htp (x86 emulation)", max_abs=vs_torch.max_abs, max_rel=rel,
                  atol=0.0, rtol=config.rtol, outputs={output: {"max_abs": vs_torch.max_abs, "max_rel": rel,
                                                                "ref_max": scale, "agreement": vs_torch.agreement}})
