"""``export_openvino``: ONNX file or torch model -> OpenVINO IR (.xml/.bin) with baked-in preprocessing.

The IR takes what a camera gives (uint8, interleaved NHWC, BGR) when asked: layout conversion,
BGR->RGB, mean/scale and the u8->f32 cast run inside the graph through OpenVINO's PrePostProcessor.
Every IR is verified on OpenVINO CPU at f32 precision with real-looking uint8 frames against the
reference (torch, or ONNX Runtime for an ONNX source) fed the same frames preprocessed in numpy.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import package_versions, update_manifest
from ..errors import ArtifactError, ConfigError, ExportError
from ._common import as_tensors, publish, source_hash, staging, torch_outputs
from .frames import camera_frames
from .result import ExportResult, compare_outputs

PRECISIONS = ("fp16", "fp32")
INPUT_TYPES = ("u8", "f32")
# default parity tolerance (atol, rtol) by weight precision; fp16 weights round to ~3 significant digits
_TOLERANCE = {"fp32": (1e-4, 1e-4), "fp16": (1e-2, 1e-2)}


@dataclass(frozen=True)
class OpenVinoConfig:
    """IR options. ``precision`` of stored weights; ``layout`` of the model's input; ``input_layout`` of
    the frames the app will feed (e.g. "NHWC" for interleaved camera frames; None = ``layout``);
    ``mean``/``scale`` per channel in pixel units, in the model's channel order, applied as
    ``(x - mean) / scale`` after ``reverse_channels`` (BGR<->RGB); ``input_type`` of the fed tensor."""

    precision: str = "fp16"
    layout: str = "NCHW"
    input_layout: str | None = None
    mean: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    reverse_channels: bool = False
    input_type: str = "u8"
    atol: float | None = None
    rtol: float | None = None
    verify: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown IR precision {self.precision!r}; choose one of: {', '.join(PRECISIONS)}")
        if self.input_type not in INPUT_TYPES:
            raise ConfigError(f"unknown input_type {self.input_type!r}; choose one of: {', '.join(INPUT_TYPES)}")
        for name in ("layout", "input_layout"):
            value = getattr(self, name)
            if value is not None and (sorted(value.upper()) != sorted(self.layout.upper()) or "C" not in value.upper()):
                raise ConfigError(f"{name}={value!r} must be a permutation of layout {self.layout!r} with a C axis, "
                                  "e.g. NCHW / NHWC")

    @property
    def tolerance(self) -> tuple[float, float]:
        """(atol, rtol) used for parity, defaulting by precision."""
        atol, rtol = _TOLERANCE[self.precision]
        return (atol if self.atol is None else self.atol, rtol if self.rtol is None else self.rtol)


def export_openvino(onnx_path_or_model: Any, config: OpenVinoConfig | None = None, out: str | Path = "build/",
                    example_inputs: Any = None, name: str | None = None, reference: Any = None) -> ExportResult:
    """Convert an ONNX file or nn.Module to IR with preprocessing, save it to ``out``, and verify it on CPU.

    The IR is compared with ``reference`` (an nn.Module; default: the torch model given as source, or
    ONNX Runtime on the source file) fed the same frames preprocessed in numpy."""
    import openvino as ov

    config = config or OpenVinoConfig()
    source = onnx_path_or_model
    if isinstance(source, (str, Path)):
        source = _check_onnx_path(source)
        name = name or source.stem
        try:
            ov_model = ov.convert_model(str(source))
        except Exception as exc:  # noqa: BLE001
            raise ArtifactError(f"OpenVINO cannot read {source} ({_first_line(exc)}); the file is corrupt or not "
                                "ONNX: re-export it with export_onnx") from exc
    else:
        if example_inputs is None:
            raise ConfigError("export_openvino from a torch model needs example_inputs (a tensor shaped like the input)")
        source = source.eval()
        name = name or type(source).__name__.lower()
        try:
            tensors = as_tensors(example_inputs)
            ov_model = ov.convert_model(source, example_input=tensors,
                                        input=[ov.PartialShape(list(t.shape)) for t in tensors])
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"openvino.convert_model failed on {type(source).__name__}: {_first_line(exc)}; "
                              "export to ONNX first (export_onnx) and convert that file") from exc
    model_shape = _static_shape(ov_model, source if isinstance(source, Path) else type(source).__name__)
    _check_channels(config, model_shape)
    ov_model = _add_preprocessing(ov_model, config)
    notes: list[str] = []
    with staging(out) as stage:
        xml = stage / f"{name}.xml"
        try:
            ov.save_model(ov_model, str(xml), compress_to_fp16=config.precision == "fp16")
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"openvino.save_model failed for {name}: {_first_line(exc)}") from exc
        parity = _verify(xml, reference if reference is not None else source, config) if config.verify else None
        if parity is None:
            notes.append("not verified (verify=False)")
        files = publish(stage, Path(out), [xml.name, xml.with_suffix(".bin").name])
    hist = _op_histogram(ov.Core().read_model(str(files[0])))
    cfg = {**asdict(config), "tolerance": list(config.tolerance)}
    details = {"model_input_shape": list(model_shape), "input_layout": config.input_layout or config.layout,
               "input_type": config.input_type, "precision": config.precision}
    src = {"model": str(source) if isinstance(source, Path) else type(source).__name__,
           "sha256": source_hash(source)}
    manifest = update_manifest(Path(out), "openvino", {
        "files": [f.name for f in files], "source": src, "config": cfg, "details": details,
        "parity": parity.to_dict() if parity else None, "op_histogram": hist, "warnings": notes,
        "versions": package_versions("openvino", "onnx", "onnxruntime")})
    return ExportResult(path=files[0], format="openvino", files=tuple(files), parity=parity, op_histogram=hist,
                        warnings=tuple(notes), config=cfg, details=details, manifest=manifest)


def preprocess_numpy(frames: np.ndarray, config: OpenVinoConfig) -> np.ndarray:
    """What the IR's preprocessing does, in numpy: cast, reverse channels, (x - mean) / scale, to ``layout``."""
    src = (config.input_layout or config.layout).upper()
    c = src.index("C")
    x = frames.astype(np.float32)
    if config.reverse_channels:
        x = np.flip(x, axis=c)
    shape = [1] * x.ndim
    shape[c] = -1
    if config.mean is not None:
        x = x - np.asarray(config.mean, np.float32).reshape(shape)
    if config.scale is not None:
        x = x / np.asarray(config.scale, np.float32).reshape(shape)
    return np.ascontiguousarray(x.transpose([src.index(ch) for ch in config.layout.upper()]))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _check_onnx_path(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix.lower() != ".onnx":
        raise ConfigError(f"export_openvino reads .onnx files or torch models, not {p.name}")
    if not p.is_file():
        raise ArtifactError(f"ONNX file {p} does not exist; export it first (edgedeploy export --to onnx)")
    if p.stat().st_size == 0:
        raise ArtifactError(f"ONNX file {p} is empty; re-export it")
    return p


def _static_shape(ov_model: Any, source: Any) -> tuple[int, ...]:
    if len(ov_model.inputs) != 1:
        raise ConfigError(f"{source} has {len(ov_model.inputs)} inputs; export_openvino's image preprocessing "
                          "expects exactly one image input")
    ps = ov_model.inputs[0].get_partial_shape()
    if ps.is_dynamic:
        raise ConfigError(f"the input of {source} has a dynamic shape {ps}; export with static shapes "
                          "(no dynamic_axes) so the IR can be verified for one frame size")
    return tuple(int(d.get_length()) for d in ps)


def _check_channels(config: OpenVinoConfig, shape: Sequence[int]) -> None:
    if len(shape) != len(config.layout):
        raise ConfigError(f"layout {config.layout!r} has {len(config.layout)} axes but the model input has shape "
                          f"{tuple(shape)}; set OpenVinoConfig(layout=...)")
    channels = shape[config.layout.upper().index("C")]
    for name in ("mean", "scale"):
        values = getattr(config, name)
        if values is not None and len(values) not in (1, channels):
            raise ConfigError(f"{name} has {len(values)} values but the model input has {channels} channels")
    if config.reverse_channels and channels != 3:
        raise ConfigError(f"reverse_channels needs 3 channels; the model input has {channels}")


def _add_preprocessing(ov_model: Any, config: OpenVinoConfig) -> Any:
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(ov_model)
    inp = ppp.input(0)
    inp.tensor().set_element_type(ov.Type.u8 if config.input_type == "u8" else ov.Type.f32) \
        .set_layout(ov.Layout(config.input_layout or config.layout))
    inp.model().set_layout(ov.Layout(config.layout))
    steps = inp.preprocess()
    steps.convert_element_type(ov.Type.f32)
    if config.reverse_channels:
        steps.reverse_channels()
    if config.mean is not None:
        steps.mean(list(map(float, config.mean)))
    if config.scale is not None:
        steps.scale(list(map(float, config.scale)))
    return ppp.build()


def _verify(xml: Path, source: Any, config: OpenVinoConfig) -> Any:
    from ..runtime import load

    session = load(xml, runtime="openvino", precision_hint="f32")
    info = session.inputs[0]
    layout = (config.input_layout or config.layout).upper()
    frames = _frames(info.shape, layout)
    if config.input_type == "f32":
        frames = frames.astype(np.float32)
    got = session.run(frames)
    x = preprocess_numpy(frames, config)
    if isinstance(source, Path):
        ref_session = load(source, runtime="onnxruntime")
        reference, ref_name = ref_session.run(x), "onnxruntime (the source ONNX)"
    else:
        import torch

        reference, ref_name = torch_outputs(source.eval(), (torch.from_numpy(x),)), "torch"
    atol, rtol = config.tolerance
    return compare_outputs(got, reference, [o.name for o in session.outputs], atol=atol, rtol=rtol,
                           runtime="openvino CPU (f32)", reference=ref_name, artifact=xml.name,
                           hint="Check mean/scale/reverse_channels and layouts, or use precision='fp32'.")


def _frames(shape: tuple[int | None, ...] | None, layout: str) -> np.ndarray:
    if shape is None or None in shape or len(shape) != 4 or not {"N", "C", "H", "W"} <= set(layout):
        raise ConfigError(f"cannot make verification frames for input shape {shape} and layout {layout}; "
                          "the IR needs a static 4-D image input (N, C, H, W in some order)")
    dims = dict(zip(layout, shape))
    return camera_frames(int(dims["N"]), int(dims["H"]), int(dims["W"]), int(dims["C"]), order="BGR", layout=layout)


def _op_histogram(ov_model: Any) -> dict[str, int]:
    skip = {"Parameter", "Result", "Constant"}
    ops = Counter(op.get_type_name() for op in ov_model.get_ordered_ops() if op.get_type_name() not in skip)
    return dict(sorted(ops.items()))
