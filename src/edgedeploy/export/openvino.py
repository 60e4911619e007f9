"""``export_openvino``: ONNX file or torch model -> OpenVINO IR (.xml/.bin), optionally taking camera frames.

By default the IR takes exactly what the model takes (its input element type, layout and values): a default
never changes what the model computes. When asked (``input_type="u8"``, ``input_layout="NHWC"``,
``reverse_channels``, ``mean``/``scale``), the IR takes what a camera gives and the conversion runs inside the
graph through OpenVINO's PrePostProcessor. Every IR is verified on OpenVINO CPU at f32 precision with the
input the user will feed (float tensors: the example, random values in its range and real photos; camera
frames: real uint8 photos) against the reference (torch, or ONNX Runtime for an ONNX source).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._io import output_lock, package_versions, update_manifest
from ..errors import ArtifactError, ConfigError, ExportError, ParityError
from ._common import as_tensors, default_name, publish, safe_name, source_hash, staging, torch_outputs, varied_inputs
from ..frames import camera_frames
from .result import ExportResult, Parity, compare_outputs

PRECISIONS = ("fp16", "fp32")
INPUT_TYPES = ("u8", "f16", "f32")
# default parity tolerance (atol, rtol) by weight precision; fp16 weights round to ~3 significant digits
_TOLERANCE = {"fp32": (1e-4, 1e-4), "fp16": (1e-2, 1e-2)}


@dataclass(frozen=True)
class OpenVinoConfig:
    """IR options. ``precision`` of stored weights; ``layout`` of the model's input; ``input_layout`` of
    the frames the app will feed (e.g. "NHWC" for interleaved camera frames; None = ``layout``);
    ``mean``/``scale`` per channel in pixel units, in the model's channel order, applied as
    ``(x - mean) / scale`` after ``reverse_channels`` (BGR<->RGB); ``input_type`` of the fed tensor
    (None: the model's own, i.e. float32 for a float model; "u8" for raw camera frames)."""

    precision: str = "fp16"
    layout: str = "NCHW"
    input_layout: str | None = None
    mean: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    reverse_channels: bool = False
    input_type: str | None = None
    atol: float | None = None
    rtol: float | None = None
    verify: bool = True
    # fp16: keep precision-sensitive paths (grid_sample coordinates) in FP32, found and checked automatically
    fp32_islands: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown IR precision {self.precision!r}; choose one of: {', '.join(PRECISIONS)}")
        if self.input_type is not None and self.input_type not in INPUT_TYPES:
            raise ConfigError(f"unknown input_type {self.input_type!r}; choose one of: {', '.join(INPUT_TYPES)}")
        for name in ("layout", "input_layout"):
            value = getattr(self, name)
            if value is not None and (sorted(value.upper()) != sorted(self.layout.upper()) or "C" not in value.upper()):
                raise ConfigError(f"{name}={value!r} must be a permutation of layout {self.layout!r} with a C axis, "
                                  "e.g. NCHW / NHWC")

    @property
    def preprocessing(self) -> bool:
        """True when the IR's input differs from the model's (camera frames: type, layout, channels, mean/scale)."""
        layout_change = self.input_layout is not None and self.input_layout.upper() != self.layout.upper()
        return (self.input_type not in (None, "f32") or layout_change or self.reverse_channels
                or self.mean is not None or self.scale is not None)

    @property
    def tolerance(self) -> tuple[float, float]:
        """(atol, rtol) used for parity, defaulting by precision."""
        atol, rtol = _TOLERANCE[self.precision]
        return (atol if self.atol is None else self.atol, rtol if self.rtol is None else self.rtol)


def export_openvino(onnx_path_or_model: Any, config: OpenVinoConfig | None = None, out: str | Path = "build/",
                    example_inputs: Any = None, name: str | None = None, reference: Any = None) -> ExportResult:
    """Convert an ONNX file or nn.Module to IR (preprocessing only when asked), save it to ``out``, verify on CPU.

    The IR is compared with ``reference`` (an nn.Module; default: the torch model given as source, or
    ONNX Runtime on the source file) on the inputs the user will feed (see the module docstring);
    ``example_inputs`` (required for a torch source) also seeds those parity inputs for an ONNX source."""
    import openvino as ov

    config = config or OpenVinoConfig()
    source = onnx_path_or_model
    tensors = as_tensors(example_inputs) if example_inputs is not None else None
    if isinstance(source, (str, Path)):
        source = _check_onnx_path(source)
        name = safe_name(name or source.stem, "name")
        try:
            ov_model = ov.convert_model(str(source))
        except Exception as exc:  # noqa: BLE001
            raise ArtifactError(f"OpenVINO cannot read {source} ({_first_line(exc)}); the file is corrupt or not "
                                "ONNX: re-export it with export_onnx") from exc
    else:
        if tensors is None:
            raise ConfigError("export_openvino from a torch model needs example_inputs (a tensor shaped like the input)")
        source = source.eval()
        name = safe_name(name, "name") if name is not None else default_name(source)
        try:
            ov_model = ov.convert_model(source, example_input=tensors,
                                        input=[ov.PartialShape(list(t.shape)) for t in tensors])
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"openvino.convert_model failed on {type(source).__name__}: {_first_line(exc)}; "
                              "export to ONNX first (export_onnx) and convert that file") from exc
    label = source if isinstance(source, Path) else type(source).__name__
    shapes = _static_shapes(ov_model, label, single=config.preprocessing)
    if config.preprocessing:
        _check_channels(config, shapes[0])
        ov_model = _add_preprocessing(ov_model, config)
    notes: list[str] = []
    if config.input_type == "u8":
        notes.append("input is uint8 camera frames (asked with input_type='u8'); feed raw pixels, not floats")
    islands = _islands(ov_model, config, tensors) if config.precision == "fp16" and config.fp32_islands else None
    if islands is not None:
        ov_model = islands.model
        notes.append(f"kept FP32 in the FP16 IR: {len(islands.kept)} op(s) on precision-sensitive paths "
                     f"({', '.join(islands.kept[:4])}{', ...' if len(islands.kept) > 4 else ''}); FP16 error "
                     f"{100 * islands.err_before:.3g}% -> {100 * islands.err_after:.3g}% of the output range")
    with output_lock(out) as folder, staging(folder) as stage:
        xml = stage / f"{name}.xml"
        try:
            ov.save_model(ov_model, str(xml), compress_to_fp16=config.precision == "fp16")
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"openvino.save_model failed for {name}: {_first_line(exc)}") from exc
        ref = reference if reference is not None else source
        parity = _verify(xml, ref, config, tensors) if config.verify else None
        if parity is None:
            notes.append("not verified (verify=False)")
        files = publish(stage, folder, [xml.name, xml.with_suffix(".bin").name])
    hist = _op_histogram(ov.Core().read_model(str(files[0])))
    cfg = {**asdict(config), "tolerance": list(config.tolerance)}
    ir_inputs = [str(p.get_element_type().to_dtype()) for p in ov_model.inputs]
    details = {"model_input_shape": list(shapes[0]), "input_layout": config.input_layout or config.layout,
               "input_type": config.input_type or _short(ir_inputs[0]), "precision": config.precision}
    if islands is not None:
        details["fp32_islands"] = islands.to_dict()
    src = {"model": str(source) if isinstance(source, Path) else type(source).__name__,
           "sha256": source_hash(source)}
    manifest = update_manifest(folder, "openvino", {
        "files": [f.name for f in files], "source": src, "config": cfg, "details": details,
        "parity": parity.to_dict() if parity else None, "op_histogram": hist, "warnings": notes,
        "versions": package_versions("openvino", "onnx", "onnxruntime")})
    return ExportResult(path=files[0], format="openvino", files=tuple(files), parity=parity, op_histogram=hist,
                        warnings=tuple(notes), config=cfg, details=details, manifest=manifest)


def _islands(ov_model: Any, config: OpenVinoConfig, example: tuple[Any, ...] | None) -> Any:
    """FP32 islands for an FP16 IR when the graph has precision-sensitive ops (None otherwise)."""
    from .fp32_islands import IslandsConfig, find_islands, keep_fp32_islands

    if not any(find_islands(ov_model, IslandsConfig(), 0)):
        return None
    infos = [(tuple(int(d.get_length()) for d in p.get_partial_shape()), str(p.get_element_type().to_dtype()))
             for p in ov_model.inputs]
    cases = _parity_cases(infos, config, example)
    return keep_fp32_islands(ov_model, [fed for _, fed in cases], IslandsConfig(rtol=config.tolerance[1]))


def _short(dtype: str) -> str:
    return {"float32": "f32", "float16": "f16", "uint8": "u8"}.get(dtype, dtype)


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


def _static_shapes(ov_model: Any, source: Any, single: bool) -> list[tuple[int, ...]]:
    if single and len(ov_model.inputs) != 1:
        raise ConfigError(f"{source} has {len(ov_model.inputs)} inputs; camera preprocessing (input_type, "
                          "input_layout, reverse_channels, mean/scale) needs exactly one image input")
    shapes = []
    for port in ov_model.inputs:
        ps = port.get_partial_shape()
        if ps.is_dynamic:
            raise ConfigError(f"the input of {source} has a dynamic shape {ps}; export with static shapes "
                              "(no dynamic_axes) so the IR can be verified for one input size")
        shapes.append(tuple(int(d.get_length()) for d in ps))
    return shapes


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
    types = {"u8": ov.Type.u8, "f16": ov.Type.f16, "f32": ov.Type.f32, None: ov.Type.f32}
    inp.tensor().set_element_type(types[config.input_type]) \
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


def _verify(xml: Path, source: Any, config: OpenVinoConfig, example: tuple[Any, ...] | None) -> Parity:
    """Parity of the IR with the reference on every input set the user may feed; the worst case is reported."""
    from ..runtime import load

    session = load(xml, runtime="openvino", precision_hint="f32")
    if isinstance(source, Path):
        ref_session = load(source, runtime="onnxruntime")
        run_ref, ref_name = ref_session.run, "onnxruntime (the source ONNX)"
    else:
        import torch

        def run_ref(xs: list[np.ndarray]) -> list[np.ndarray]:
            return torch_outputs(source.eval(), tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in xs))
        ref_name = "torch"
    atol, rtol = config.tolerance
    hint = "Check mean/scale/reverse_channels and layouts, or use precision='fp32'."
    results = []
    cases = _parity_cases([(i.shape, i.dtype) for i in session.inputs], config, example)
    for label, fed in cases:
        model_in = [preprocess_numpy(fed[0], config)] if config.preprocessing else fed
        try:
            got = session.run(fed)
            results.append(compare_outputs(got, run_ref(model_in), [o.name for o in session.outputs], atol=atol,
                                           rtol=rtol, runtime="openvino CPU (f32)", reference=ref_name,
                                           artifact=xml.name, hint=hint))
        except ParityError as exc:
            raise ParityError(f"{exc} (on {label})") from None
    worst = max(results, key=lambda p: p.max_abs)
    return replace(worst, checked=tuple(label for label, _ in cases))


def _parity_cases(infos: list[tuple[Any, str]], config: OpenVinoConfig, example: tuple[Any, ...] | None
                  ) -> list[tuple[str, list[np.ndarray]]]:
    """The inputs the user will feed (``infos``: the IR's input shapes and dtypes): camera frames for a camera
    IR, float tensors of the model's own kind (the example, random values in its range, photos) otherwise."""
    import torch

    if config.preprocessing:
        layout = (config.input_layout or config.layout).upper()
        frames = _frames(infos[0][0], layout)
        flipped = np.ascontiguousarray(np.flip(frames, axis=layout.index("W")))
        dtype = {"u8": np.uint8, "f16": np.float16}.get(config.input_type or "f32", np.float32)
        return [("real photos", [frames.astype(dtype)]), ("mirrored photos", [flipped.astype(dtype)])]
    if example is None:
        gen = torch.Generator().manual_seed(0)
        example = tuple(torch.randn(tuple(shape), generator=gen).to(getattr(torch, dtype))
                        if np.dtype(dtype).kind == "f" else torch.zeros(tuple(shape), dtype=getattr(torch, dtype))
                        for shape, dtype in infos)
    cases = [("the example", [x.detach().cpu().numpy() for x in example])]
    cases += [(label, [x.detach().cpu().numpy() for x in xs]) for label, xs in varied_inputs(example)]
    return cases


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
