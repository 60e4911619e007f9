"""QNN-ready QDQ quantization (u8/u16 activations, or a u8/u16 mix) with ONNX Runtime's QNN config.

The one QNN quantization: the ``qnn`` quantizer backend runs it, and ``export_qnn`` goes through that backend.

Uses ``onnxruntime.quantization.execution_providers.qnn`` (``qnn_preprocess_model`` and
``get_qnn_qdq_config``): the QDQ layout the QNN HTP backend fuses into quantized kernels. The mixed
mode ranks activations by their u8 quantization noise (SQNR, measured locally so errors do not
accumulate) and moves the noisiest ones to u16 until top-1 agreement with FP32 meets the budget.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import atomic_path
from ...errors import CalibrationError, ConfigError, ExportError
from ...export.qnn import agreement
from ...onnx_utils import probe_outputs, sqnr_db

ACTIVATIONS = ("u8", "u16")
WEIGHTS = ("u8", "s8")


class _Reader:
    """A CalibrationDataReader over prepared feeds."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self._feeds = list(feeds)
        self._it = iter(self._feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._feeds)


def preprocess(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Run QNN's graph preprocessing (fusions such as LayerNorm/Gelu) into ``dst`` (a copy when nothing changed)."""
    from onnxruntime.quantization.execution_providers.qnn import qnn_preprocess_model

    with atomic_path(dst) as tmp:
        try:
            changed = qnn_preprocess_model(str(src), str(tmp))
        except Exception as exc:  # noqa: BLE001 - onnx/ort errors
            raise ExportError(f"QNN preprocessing of {src} failed ({exc}); check the model with onnx.checker") from exc
        if not changed:
            shutil.copyfile(src, tmp)
    return Path(dst)


def quantize_qdq(src: str | os.PathLike[str], dst: str | os.PathLike[str], feeds: Sequence[dict[str, np.ndarray]],
                 activations: str = "u8", weights: str = "u8", u16_tensors: Iterable[str] = (),
                 method: str = "minmax", exclude: Sequence[str] = ()) -> Path:
    """Write a QNN-ready QDQ model of ``src`` (already preprocessed) calibrated on ``feeds`` to ``dst``."""
    from onnxruntime.quantization import CalibrationMethod, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    if activations not in ACTIVATIONS:
        raise ConfigError(f"QNN QDQ activations {activations!r} are not supported; choose one of {ACTIVATIONS}")
    if weights not in WEIGHTS:
        raise ConfigError(f"QNN QDQ weights {weights!r} are not supported; choose one of {WEIGHTS}")
    if not feeds:
        raise CalibrationError("calibration data is empty; QNN u8/u16 quantization needs representative samples")
    act = QuantType.QUInt16 if activations == "u16" else QuantType.QUInt8
    overrides = {name: [{"quant_type": QuantType.QUInt16}] for name in u16_tensors} if activations == "u8" else {}
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise ConfigError(f"unknown calibration method {method!r}; choose one of {', '.join(methods)}")
    kwargs: dict[str, Any] = {"per_channel": weights == "s8", "calibrate_method": methods[method],
                              "nodes_to_exclude": list(exclude) or None}
    if weights == "s8":
        kwargs["weight_symmetric"] = True
    try:
        config = get_qnn_qdq_config(str(src), _Reader(feeds), activation_type=act,
                                    weight_type=QuantType.QInt8 if weights == "s8" else QuantType.QUInt8,
                                    init_overrides=overrides or None, **kwargs)
        with atomic_path(dst) as tmp:
            quantize(str(src), str(tmp), config)
    except (CalibrationError, ConfigError):
        raise
    except Exception as exc:  # noqa: BLE001 - onnxruntime.quantization raises many types
        raise ExportError(f"QNN QDQ quantization of {Path(src).name} ({activations} activations) failed: "
                          f"{str(exc).strip()[:300]}; check the calibration samples match the model input") from exc
    return Path(dst)


def run_cpu(onnx_path: str | os.PathLike[str], feeds: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """Run a (QDQ or float) ONNX model on ONNX Runtime's CPU over feeds; outputs concatenated along the batch."""
    from ...runtime import load

    session = load(onnx_path, runtime="onnxruntime", providers=["CPUExecutionProvider"])
    runs = [session.run(feed) for feed in feeds]
    return [np.concatenate([r[i] for r in runs]) for i in range(len(runs[0]))]


def activation_sqnr(float_path: str | os.PathLike[str], qdq_path: str | os.PathLike[str],
                    feeds: Sequence[dict[str, np.ndarray]]) -> dict[str, float]:
    """Median per-sample SQNR (dB) of each quantized activation vs itself fake-quantized with the QDQ scale."""
    import onnx
    from onnx import numpy_helper

    qdq = onnx.load(str(qdq_path))
    inits = {i.name: numpy_helper.to_array(i) for i in qdq.graph.initializer}
    params: dict[str, tuple[float, int, int]] = {}
    for node in qdq.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits and len(node.input) >= 3:
            zp = inits.get(node.input[2])
            scale = inits.get(node.input[1])
            if zp is None or scale is None or scale.size != 1:
                continue
            qmax = 65535 if zp.dtype == np.uint16 else 255
            params.setdefault(node.input[0], (float(scale), int(zp), qmax))
    model = onnx.load(str(float_path), load_external_data=False)
    produced = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
    # the quantizer renames a graph output X feeding a QuantizeLinear to X_QuantizeLinear_Input
    float_name = {n: n if n in produced else n.removesuffix("_QuantizeLinear_Input") for n in params}
    names = [n for n in params if float_name[n] in produced]
    with tempfile.TemporaryDirectory() as tmp:
        probe = probe_outputs(Path(float_path), [float_name[n] for n in names], Path(tmp) / "probe.onnx")
        session_out = run_cpu(probe, feeds)
        order = [o.name for o in onnx.load(str(probe), load_external_data=False).graph.output]
        values = [session_out[order.index(float_name[n])] for n in names]
    out = {}
    for name, x in zip(names, values):
        scale, zp, qmax = params[name]
        fq = (np.clip(np.round(x / scale) + zp, 0, qmax) - zp) * scale
        # median over samples: a few outlier samples that set the range must not hide the noise on the rest
        out[name] = float(np.median([sqnr_db(a, b) for a, b in zip(x, fq)]))
    return out


@dataclass(frozen=True)
class MixedChoice:
    """The u8/u16 mix chosen: which activations are u16, the CPU QDQ agreement of each step tried."""

    u16_tensors: tuple[str, ...]
    agreement: float
    n_activations: int
    tried: list[dict[str, float]] = field(default_factory=list)


def choose_mixed(float_path: str | os.PathLike[str], dst: str | os.PathLike[str],
                 feeds: Sequence[dict[str, np.ndarray]], eval_feeds: Sequence[dict[str, np.ndarray]],
                 budget: float, weights: str = "u8", **options: Any) -> MixedChoice:
    """Quantize with u8 activations, promoting the noisiest to u16 until FP32 agreement >= ``budget``."""
    reference = run_cpu(float_path, eval_feeds)[0]
    with tempfile.TemporaryDirectory() as tmp:
        u8_path = quantize_qdq(float_path, Path(tmp) / "u8.onnx", feeds, "u8", weights, **options)
        sqnr = activation_sqnr(float_path, u8_path, feeds)
        ranked = sorted(sqnr, key=lambda n: sqnr[n])
        steps = sorted({0, len(ranked) // 8, len(ranked) // 4, len(ranked) // 2, len(ranked)})
        tried: list[dict[str, float]] = []
        best: tuple[float, int, Path] = (-1.0, 0, u8_path)
        for k in steps:
            path = u8_path if k == 0 else quantize_qdq(float_path, Path(tmp) / f"mix{k}.onnx", feeds, "u8",
                                                       weights, ranked[:k], **options)
            agree = agreement(run_cpu(path, eval_feeds)[0], reference)
            tried.append({"u16_activations": k, "agreement": agree})
            if agree > best[0]:
                best = (agree, k, path)
            if agree >= budget:
                best = (agree, k, path)
                break
        with atomic_path(dst) as out:
            shutil.copyfile(best[2], out)
    return MixedChoice(tuple(ranked[:best[1]]), best[0], len(ranked), tried)
