"""MyriadX (RVC2, OAK cameras) blobs, compiled offline with the OpenVINO 2021.4.2 MYRIAD plugin.

Flow: load the ONNX -> name any op the 2021.4 plugin rejects -> bring it to opset <= 13 (the newest
the 2021.4 ONNX reader knows) -> bake U8 input, BGR->RGB and mean/scale into the graph and
check that on ONNX Runtime -> compile (``myriad_toolchain``, or Luxonis' online blobconverter)
-> read the blob back with depthai and check inputs, outputs, shaves and CMX slices.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any


from .._io import output_lock, package_versions, sha256_file, update_manifest
from ..errors import ArtifactError, ConfigError, ExportError, ToolchainError
from ..onnx_utils import opset_of as _opset
from ._common import publish, safe_name, staging
from .myriad_ops import check_myriad_ops, describe_ops, myriad_op_status
from .onnx_opset import to_opset
from .onnx_preprocess import Preprocess, bake_preprocessing, run_with_and_without
from .result import ExportResult, compare_outputs

if TYPE_CHECKING:
    import onnx

# config -> (input type baked into the ONNX graph, input precision the blob must report)
_PRECISIONS = {"U8": ("u8", "U8F"), "FP16": ("fp32", "FP16"), "FP32": ("fp32", "FP32")}


@dataclass(frozen=True)
class BlobConfig:
    """How to compile a MyriadX blob: SHAVE cores, CMX slices, input precision and baked preprocessing."""

    shaves: int = 6                    # SHAVE vector cores for the network (RVC2 has 16; DepthAI leaves ~6-8 free)
    cmx_slices: int = 6                # CMX memory slices; usually equal to shaves
    # FP32: what a float model takes (the device converts to FP16; default, the model's own input);
    # U8: raw camera frames (a camera pipeline; with mean/scale baked in); FP16: tensors in the RVC2 native type
    input_precision: str = "FP32"
    mean: float | tuple[float, ...] | None = None    # subtracted per channel (model channel order)
    scale: float | tuple[float, ...] | None = None   # divided per channel, after the mean
    reverse_channels: bool = False     # the camera sends BGR, the model wants RGB
    layout: str = "NCHW"
    online: bool = False               # compile with Luxonis' blobconverter service instead (needs internet)
    # ops the compiler rejects (e.g. GridSample): run them on the host (a second ONNX, `export.split`) instead
    # of refusing; the network up to those ops still runs on the device
    host_fallback: bool = False
    atol: float = 1e-4                 # tolerance of the baked-preprocessing check on ONNX Runtime
    rtol: float = 1e-5

    def __post_init__(self) -> None:
        for key in ("shaves", "cmx_slices"):
            v = getattr(self, key)
            if not isinstance(v, int) or not 1 <= v <= 16:
                raise ConfigError(f"{key}={v!r} is out of range; the Myriad X has 16 SHAVEs and 16 CMX slices (1-16)")
        if self.shaves > self.cmx_slices:   # the MYRIAD compiler's own rule
            raise ConfigError(f"shaves={self.shaves} > cmx_slices={self.cmx_slices}; the MYRIAD compiler needs "
                              "shaves <= cmx_slices (use the same number for both)")
        if self.online and self.cmx_slices != self.shaves:
            raise ConfigError(f"online=True: blobconverter compiles with as many CMX slices as SHAVEs; set "
                              f"cmx_slices={self.shaves} or compile offline")
        if self.input_precision.upper() not in _PRECISIONS:
            raise ConfigError(f"input_precision {self.input_precision!r} is unknown; choose one of {sorted(_PRECISIONS)}")
        self.preprocess()        # validates mean/scale/layout

    def preprocess(self) -> Preprocess:
        """The preprocessing to bake into the graph."""
        return Preprocess(input_type=_PRECISIONS[self.input_precision.upper()][0], mean=self.mean, scale=self.scale,
                          reverse_channels=self.reverse_channels, layout=self.layout)

    def compiler_config(self) -> dict[str, str]:
        """MYRIAD plugin keys (Myriad X 2480, no device attached) plus myriad_compile's INPUT_PRECISION."""
        cfg = {"VPU_MYRIAD_PLATFORM": "VPU_MYRIAD_2480", "MYRIAD_NUMBER_OF_SHAVES": str(self.shaves),
               "MYRIAD_NUMBER_OF_CMX_SLICES": str(self.cmx_slices)}
        if self.input_precision.upper() == "FP16":     # U8/FP32 follow the ONNX input's type
            cfg["INPUT_PRECISION"] = "FP16"
        return cfg


def export_blob(onnx_or_ir: str | os.PathLike[str], config: BlobConfig | None = None,
                out: str | os.PathLike[str] | None = None, name: str | None = None) -> ExportResult:
    """Compile an ONNX model to a MyriadX blob in ``out`` (offline, for real) and verify it by reading it back."""
    config = config or BlobConfig()
    src = Path(onnx_or_ir)
    if not src.is_file():
        raise ArtifactError(f"model file {src} does not exist; export it first (edgedeploy export ... --to onnx)")
    notes: list[str] = []
    folder = Path(out) if out is not None else src.parent
    name = safe_name(name, "name") if name is not None else re.sub(r"[^A-Za-z0-9_-]", "_", src.stem)
    if src.suffix.lower() == ".xml":
        src = _source_onnx_of_ir(src)
        notes.append(f"compiled from {src.name}, the ONNX this IR was converted from (the 2021.4 compiler reads "
                     "IR v10 only); input preprocessing comes from BlobConfig")
    if src.suffix.lower() != ".onnx":
        raise ConfigError(f"{src} is not an .onnx file (or an IR from export_openvino); export_blob compiles ONNX")
    if config.input_precision.upper() == "U8":
        notes.append("input is U8 camera frames (asked with input_precision='U8'); the device converts to FP16")
    source = src
    with output_lock(folder), staging(folder) as stage:
        original, src, split = _device_part(_load_onnx(src), src, config, stage, name, notes)
        unknown = check_myriad_ops(original, src)
        if unknown:
            notes.append(f"never probed alone, left to the compiler: {describe_ops(unknown)}")
        downgraded = to_opset(original, src, notes)
        pre = config.preprocess()
        baked = bake_preprocessing(downgraded, pre)
        parity = _preprocessing_parity(original, baked, pre, config, src)
        blob_name, onnx_name = f"{name}_{config.shaves}shave.blob", f"{name}_myriad.onnx"
        import onnx

        onnx.save(baked, stage / onnx_name)
        compiler = _compile(stage / onnx_name, stage / blob_name, config)
        info = verify_blob(stage / blob_name, baked, config)
        extra = [split.host.name] if split is not None else []
        files = publish(stage, folder, [blob_name, onnx_name, *extra])
    hist = dict(sorted(Counter(n.op_type for n in baked.graph.node).items()))
    cfg = asdict(config)
    details = {"compiler": compiler, "opset": _opset(baked), "blob": info, "blob_bytes": files[0].stat().st_size,
               "source_opset": _opset(original)}
    if split is not None:
        details["split"] = {**split.to_dict(), "device": None, "host": files[2].name}
    manifest = update_manifest(folder, "blob", {
        "files": [f.name for f in files], "source": {"path": str(source), "sha256": sha256_file(source)},
        "config": cfg, "details": details, "parity": parity.to_dict(), "op_histogram": hist, "warnings": notes,
        "versions": package_versions("onnx", "onnxruntime", "depthai", "blobconverter"),
    })
    return ExportResult(path=files[0], format="blob", files=tuple(files), parity=parity, op_histogram=hist,
                        warnings=tuple(notes), config=cfg, details=details, manifest=manifest)


def _device_part(model: onnx.ModelProto, src: Path, config: BlobConfig, stage: Path, name: str,
                 notes: list[str]) -> tuple[onnx.ModelProto, Path, Any]:
    """The graph to compile: the whole model, or with ``host_fallback`` its part before the rejected ops."""
    rejected, _ = myriad_op_status(model)
    if not rejected or not config.host_fallback:
        return model, src, None
    from .split import split_model

    split = split_model(src, out=stage, name=name)
    notes.append(f"{', '.join(sorted(rejected))} run on the host ({split.host.name}, "
                 f"{split.host_latency_ms or 0:.3f} ms on ONNX Runtime); the device part goes into the blob "
                 f"({split.transfer_bytes} bytes back per frame at FP16)")
    return _load_onnx(split.device), split.device, split


def _compile(model: Path, blob: Path, config: BlobConfig) -> str:
    """Compile ``model`` into ``blob`` (offline toolchain, or Luxonis' service); returns the compiler's name."""
    if config.online:
        _compile_online(model, blob, config)
        return "blobconverter (online)"
    from rich.console import Console

    from .myriad_toolchain import OPENVINO_VERSION, ensure_toolchain

    toolchain = ensure_toolchain()
    with Console(stderr=True).status(f"compiling {blob.name} ({config.shaves} SHAVEs) with the MYRIAD plugin"):
        toolchain.compile(model, blob, config.compiler_config())
    return f"openvino {OPENVINO_VERSION} MYRIAD plugin (offline)"


def verify_blob(path: str | os.PathLike[str], model: onnx.ModelProto, config: BlobConfig) -> dict[str, Any]:
    """Read a blob back with depthai; check its I/O names, shapes, input precision, shaves and slices."""
    dai = _depthai()
    try:
        blob = dai.OpenVINO.Blob(Path(path))
    except RuntimeError as exc:
        raise ArtifactError(f"depthai cannot read the blob {path}: {exc}; recompile it") from exc
    info = {
        "version": dai.OpenVINO.getVersionName(blob.version), "shaves": blob.numShaves, "cmx_slices": blob.numSlices,
        "stages": blob.stageCount,
        # depthai lists dims innermost first (W, H, C, N); report them in the ONNX (N, C, H, W) order.
        "inputs": {n: {"shape": list(reversed(t.dims)), "dtype": t.dataType.name} for n, t in blob.networkInputs.items()},
        "outputs": {n: {"shape": list(reversed(t.dims)), "dtype": t.dataType.name}
                    for n, t in blob.networkOutputs.items()},
    }
    problems = []
    if (blob.numShaves, blob.numSlices) != (config.shaves, config.cmx_slices):
        problems.append(f"shaves/slices {blob.numShaves}/{blob.numSlices}, asked {config.shaves}/{config.cmx_slices}")
    want_in, want_out = _io_shapes(model)
    for kind, want in (("inputs", want_in), ("outputs", want_out)):
        got = {n: v["shape"] for n, v in info[kind].items()}
        if got != want:
            problems.append(f"{kind} {got}, the ONNX graph has {want}")
    want_type = _PRECISIONS[config.input_precision.upper()][1]
    for n, v in info["inputs"].items():
        if v["dtype"] != want_type:
            problems.append(f"input {n!r} precision {v['dtype']}, asked {want_type}")
    if problems:
        raise ExportError(f"blob {Path(path).name} does not match what was asked: {'; '.join(problems)}")
    return info


def _io_shapes(model: onnx.ModelProto) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    inits = {i.name for i in model.graph.initializer}

    def dims(v: Any) -> list[int]:
        return [d.dim_value for d in v.type.tensor_type.shape.dim]
    return ({v.name: dims(v) for v in inferred.graph.input if v.name not in inits},
            {v.name: dims(v) for v in inferred.graph.output})


def _depthai() -> Any:
    os.environ.setdefault("DEPTHAI_LEVEL", "error")      # its USB warning means nothing offline
    try:
        import depthai as dai
    except ImportError as exc:
        raise ToolchainError("depthai is not installed; blobs are verified by reading them back with it: "
                             "pip install 'depthai>=2.28,<3'") from exc
    return dai


def _load_onnx(src: Path) -> onnx.ModelProto:
    import onnx

    try:
        model = onnx.load(str(src))
        onnx.checker.check_model(model)
    except Exception as exc:   # protobuf DecodeError, ValidationError, ...
        raise ArtifactError(f"{src} is not a valid ONNX model ({type(exc).__name__}: {str(exc)[:200]}); "
                            "re-export it") from exc
    if not model.graph.node:
        raise ArtifactError(f"{src} has an empty graph; re-export it")
    return model


def _preprocessing_parity(original: onnx.ModelProto, baked: onnx.ModelProto, pre: Preprocess,
                          config: BlobConfig, src: Path) -> Any:
    got, ref, names = run_with_and_without(original, baked, pre)
    return compare_outputs(got, ref, names, atol=config.atol, rtol=config.rtol, runtime="onnxruntime",
                           reference="original ONNX on numpy-preprocessed frames",
                           artifact=f"{src.stem} (opset {_opset(baked)}, preprocessing baked)",
                           hint="the opset conversion or the baked preprocessing changed the results")


def _compile_online(model: Path, out: Path, config: BlobConfig) -> None:
    try:
        import blobconverter
    except ImportError as exc:
        raise ToolchainError("online=True needs Luxonis' blobconverter: pip install blobconverter "
                             "(or compile offline with online=False)") from exc
    try:
        got = blobconverter.from_onnx(
            model=str(model), data_type="FP16", shaves=config.shaves, version="2021.4", output_dir=str(out.parent),
            use_cache=False, optimizer_params=[], compile_params=[f"-ip {config.input_precision.upper()}"])
    except Exception as exc:   # requests' ConnectionError, HTTP errors, ...
        raise ExportError(f"blobconverter could not compile {model.name} online ({type(exc).__name__}: "
                          f"{str(exc)[:200]}); check the internet connection or use online=False") from exc
    os.replace(got, out)


def _source_onnx_of_ir(xml: Path) -> Path:
    """The ONNX file an edgedeploy IR was converted from (its manifest says which), checked by hash."""
    head = xml.read_text(errors="replace")[:400]
    m = re.search(r"<net\b[^>]*\bversion=\"(\d+)\"", head)
    why = (f"{xml} is OpenVINO IR version {m.group(1) if m else 'unknown'}; the 2021.4 MYRIAD compiler reads only "
           "IR v10, which current OpenVINO cannot write")
    try:
        entry = json.loads((xml.parent / "manifest.json").read_text())[xml.name]
        onnx_path = Path(entry["source"]["model"])
        if xml.name in entry["files"] and onnx_path.suffix == ".onnx" and onnx_path.is_file() \
                and sha256_file(onnx_path) == entry["source"]["sha256"]:
            return onnx_path
    except (OSError, KeyError, TypeError, ValueError):
        pass
    raise ConfigError(f"{why}, and its manifest.json names no unchanged source .onnx; pass the .onnx it was "
                      "converted from instead")
