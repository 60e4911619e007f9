"""``export(model, ExportConfig)``: every format a deployment needs (ONNX, OpenVINO IR, MyriadX blob, QNN context)
from one model, each verified, with every option checked before the first file is written.

This is what ``edgedeploy export`` and a recipe's export step call. It decides what one exporter alone cannot:
which ONNX feeds which compiler (the blob compiler reads opsets <= 13), which reference each parity gate
compares with, and that a second run into the same folder is refused.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._io import output_lock, staging
from ..errors import ConfigError, ShapeError, UnsupportedOpError
from ..export.blob import BlobConfig
from ..export.onnx import OnnxConfig
from ..export.openvino import OpenVinoConfig
from ..export.qnn import QnnConfig
from ..export.result import ExportResult

FORMATS = ("onnx", "openvino", "blob", "qnn", "depthai")


@dataclass(frozen=True)
class ExportConfig:
    """What to export and how; one config per format. ``exporter``/``opset`` None: each format's default
    (ONNX artifact: the dynamo exporter at its opset; blob: TorchScript at opset 13)."""

    to: tuple[str, ...] = ("onnx", "openvino")
    exporter: str | None = None
    opset: int | None = None
    fallback: bool = False
    allow_data_dependent: bool = False
    openvino: OpenVinoConfig = field(default_factory=OpenVinoConfig)
    blob: BlobConfig = field(default_factory=BlobConfig)
    qnn: QnnConfig = field(default_factory=QnnConfig)
    name: str | None = None

    def __post_init__(self) -> None:
        to = tuple(t.strip().lower() for t in ((self.to,) if isinstance(self.to, str) else self.to))
        unknown = [t for t in to if t not in FORMATS]
        if unknown or not to:
            raise ConfigError(f"unknown export format(s) {unknown or list(self.to)}; choose from: {', '.join(FORMATS)}")
        object.__setattr__(self, "to", tuple(dict.fromkeys(to)))
        if "depthai" in self.to and "blob" not in self.to:
            raise ConfigError("--to depthai builds the DepthAI pipeline around the MyriadX blob: add blob "
                              "(--to blob,depthai)")
        self.onnx_config()                       # validates exporter and opset now
        if self.name is not None:
            from ..export._common import safe_name

            safe_name(self.name, "name")

    def onnx_config(self) -> OnnxConfig:
        """The ONNX artifact's exporter settings."""
        return OnnxConfig(exporter=self.exporter or "dynamo", opset=self.opset, fallback=self.fallback,
                          allow_data_dependent=self.allow_data_dependent)

    def blob_onnx_config(self) -> OnnxConfig:
        """How the blob step's ONNX is exported: the user's exporter/opset, else TorchScript at opset 13."""
        from ..export.blob_check import blob_onnx_config

        return replace(blob_onnx_config(self.exporter, self.opset), fallback=self.fallback,
                       allow_data_dependent=self.allow_data_dependent)


def export(model: Any, config: ExportConfig | None = None, *, input_shape: tuple[int, ...] | None = None,
           example_inputs: Any = None, calibration: Any = None, out: str | os.PathLike[str] = "build/",
           name: str | None = None) -> list[ExportResult]:
    """Export a torch module (give ``input_shape`` or ``example_inputs``) or an ``.onnx`` file to every format
    in ``config.to``, each verified against the source; returns one ExportResult per artifact."""
    config = config or ExportConfig()
    source, example, shape = _validate(model, config, input_shape, example_inputs, calibration)
    base = name or config.name or _default_name(source)
    host = getattr(source, "write_depthai_host", None)       # a model's own host decoder (e.g. the detector's)
    source, note = _deploy_form(source, example)
    results: list[ExportResult] = []
    # all or nothing: every format is written into a staging folder and published once all are verified
    with output_lock(out) as folder, staging(folder) as stage:
        onnx_path = source if isinstance(source, Path) else None
        if "onnx" in config.to:
            from ..export.onnx import export_onnx

            results.append(export_onnx(source, example, config.onnx_config(), out=stage, name=base))
            onnx_path = results[-1].path
        if "openvino" in config.to:
            results.append(_openvino(source, onnx_path, example, config, stage, base))
        if "blob" in config.to:
            results.append(_blob(source, onnx_path, example, config, stage, base))
        if "depthai" in config.to:
            results.append(_depthai(results[-1], host, stage, base))
        if "qnn" in config.to:
            from ..compress.quantize.qnn import export_qnn

            results.append(export_qnn(onnx_path if isinstance(source, Path) else source, config.qnn,
                                      calibration=calibration, example_inputs=example, out=stage, name=base))
        results = _publish_all(stage, folder, results)
    return [replace(r, warnings=(note,) + r.warnings) for r in results] if note else results


def _publish_all(stage: Path, folder: Path, results: list[ExportResult]) -> list[ExportResult]:
    """Move every staged file into ``folder`` and record the staged manifest's entries there, paths rewritten."""
    import json

    from .._io import publish, update_manifest

    staged = stage / "manifest.json"
    entries = json.loads(staged.read_text()) if staged.is_file() else {}
    publish(stage, folder, sorted(p.name for p in stage.iterdir() if p.is_file() and p.name != "manifest.json"
                                  and not p.name.startswith(".")))
    for entry in entries.values():
        entry = json.loads(json.dumps(entry).replace(str(stage), str(folder)))
        update_manifest(folder, entry.pop("stage"), {k: v for k, v in entry.items()
                                                     if k not in ("sha256", "written_at")})

    def moved(p: Path) -> Path:
        return folder / p.relative_to(stage) if p.is_relative_to(stage) else p

    return [replace(r, path=moved(r.path), files=tuple(moved(f) for f in r.files),
                    manifest=folder / "manifest.json" if r.manifest is not None else None) for r in results]


def _deploy_form(source: Any, example: Any) -> tuple[Any, str | None]:
    """A model with re-parameterizable blocks ships in its deploy form (what ``check`` judges): fused, with
    its outputs checked equal to the training form's (in float64, ``reparameterize``)."""
    if isinstance(source, Path) or not any(callable(getattr(m, n, None)) for m in source.modules()
                                           for n in ("reparameterize", "switch_to_deploy")):
        return source, None
    from ..blocks.reparam import ReparamConfig, reparameterize

    from ..data import as_tensors

    shape = tuple(as_tensors(example)[0].shape)
    result = reparameterize(source, shape, ReparamConfig(fuse_conv_bn=False, warmup=0, repeats=1))
    r = result.report
    return result.model, (f"exported in deploy form: {r.blocks_reparameterized} re-parameterizable block(s) fused, "
                          f"outputs equal to the training form within {r.max_abs_error:.1e} (float64); "
                          f"MACs {r.macs_before:,} -> {r.macs_after:,}")


def _default_name(source: Any) -> str:
    from ..export._common import default_name

    return source.stem if isinstance(source, Path) else default_name(source)


def _validate(model: Any, config: ExportConfig, input_shape: Any, example_inputs: Any,
              calibration: Any) -> tuple[Any, Any, tuple[int, ...] | None]:
    """Check the model, shapes and every per-format option against each other before anything is written."""
    import torch

    from ..shapes import check_shape, fill_dims
    from ..onnx_utils import onnx_inputs

    if isinstance(model, (str, Path)):
        source: Any = Path(model)
        if source.suffix.lower() != ".onnx" or not source.is_file():
            raise ConfigError(f"{model} is not an existing .onnx file; export reads torch models or ONNX files")
        if "onnx" in config.to:
            raise ConfigError(f"{source.name} is already an ONNX file: --to onnx has nothing to write; ask for "
                              "openvino, blob or qnn")
        specs = onnx_inputs(source)
        dims = tuple(specs[0].shape)
        shape = None if None in dims else dims
        if input_shape is not None:
            shape = fill_dims(tuple(input_shape), dims, f"{source.name}'s input {specs[0].name!r}")
        example = None
    elif isinstance(model, torch.nn.Module):
        source = model.eval()
        if example_inputs is None:
            if input_shape is None:
                raise ShapeError(f"{type(model).__name__} is a torch module: give its input shape (input_shape=, "
                                 "e.g. 1x3x224x224) or example_inputs=")
            shape = check_shape(tuple(input_shape))
            example = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        else:
            from ..data import as_tensors

            example = as_tensors(example_inputs)
            shape = tuple(example[0].shape)
    else:
        raise ConfigError(f"cannot export a {type(model).__name__}; pass a torch nn.Module or an .onnx path")
    _check_formats(config, shape, calibration)
    return source, example, shape


def _check_formats(config: ExportConfig, shape: tuple[int, ...] | None, calibration: Any) -> None:
    if "blob" in config.to and config.opset is not None and config.opset > 13 and config.exporter == "torchscript":
        raise ConfigError(f"--to blob needs an ONNX at opset <= 13 (the MyriadX 2021.4 reader), but --opset "
                          f"{config.opset} was asked with the torchscript exporter; drop --opset or use 13")
    channels = None
    if shape is not None and len(shape) == 4:
        channels = shape[1] if config.openvino.layout.upper() == "NCHW" else shape[3]
    for fmt, mean, scale, reverse in (("openvino", config.openvino.mean, config.openvino.scale,
                                       config.openvino.reverse_channels),
                                      ("blob", config.blob.mean, config.blob.scale, config.blob.reverse_channels)):
        if fmt not in config.to:
            continue
        for what, values in (("mean", mean), ("scale", scale)):
            n = 1 if values is None or isinstance(values, (int, float)) else len(values)
            if values is not None and channels is not None and n not in (1, channels):
                raise ConfigError(f"--{what} has {n} values but the model input has {channels} channels; give one "
                                  "value per channel or a single value")
        if reverse and channels is not None and channels != 3:
            raise ConfigError(f"--reverse-channels needs 3 channels; the model input has {channels}")
    if "qnn" in config.to and config.qnn.activations != "fp16" and calibration is None:
        raise ConfigError(f"--to qnn with {config.qnn.activations} activations needs calibration data: pass "
                          "calibration= (digits, an image folder or a .npy file)")


def _openvino(source: Any, onnx_path: Path | None, example: Any, config: ExportConfig, folder: Path,
              base: str) -> ExportResult:
    from ..export.openvino import export_openvino

    if onnx_path is not None:
        return export_openvino(onnx_path, config.openvino, out=folder, name=base, example_inputs=example,
                               reference=None if isinstance(source, Path) else source)
    return export_openvino(source, config.openvino, out=folder, example_inputs=example, name=base)


def _blob(source: Any, onnx_path: Path | None, example: Any, config: ExportConfig, folder: Path,
          base: str) -> ExportResult:
    """The blob from an ONNX the 2021.4 reader understands: the ONNX artifact when its opset is <= 13 (or when
    ``host_fallback`` cuts the graph: the device part is converted down), else a dedicated export (said in the
    result's warnings)."""
    import onnx

    from ..export.blob import export_blob
    from ..export.onnx import export_onnx
    from ..onnx_utils import opset_of

    notes: list[str] = []
    if onnx_path is None or (not isinstance(source, Path) and not config.blob.host_fallback
                             and opset_of(onnx.load(str(onnx_path))) > 13):
        if isinstance(source, Path):
            raise ConfigError(f"{source} cannot be read for the blob step")
        try:
            helper = export_onnx(source, example, config.blob_onnx_config(), out=folder, name=f"{base}-blob")
        except UnsupportedOpError:
            if config.exporter is not None or config.opset is not None:
                raise
            # an op opset 13 cannot express (e.g. grid_sampler): export at the exporter's own opset and let the
            # blob step judge it (its op check names the op and the fix, e.g. host_fallback)
            helper = export_onnx(source, example, config.onnx_config(), out=folder, name=f"{base}-blob")
        onnx_path = helper.path
        notes.append(f"compiled from {onnx_path.name} ({helper.details['exporter']} exporter, opset "
                     f"{helper.details['opset']}): the MyriadX 2021.4 reader knows opsets <= 13")
    res = export_blob(onnx_path, config.blob, out=folder, name=base)
    return replace(res, warnings=tuple(notes) + res.warnings)


def _depthai(blob: ExportResult, host: Any, folder: Path, base: str) -> ExportResult:
    """The XLinkIn -> NeuralNetwork -> XLinkOut pipeline around the blob, built with depthai 2.x without a device:
    its JSON (blob bytes as size + sha256), the generic ``run_on_oak.py`` and, for a model that has one
    (``write_depthai_host``), its own host script that decodes and draws its outputs."""
    from .._io import package_versions, sha256_file, update_manifest, write_json_atomic
    from ..export.depthai import build_depthai_pipeline

    built = build_depthai_pipeline(blob.path)          # writes run_on_oak.py / .json beside the blob
    pipeline = write_json_atomic(folder / f"{base}.depthai.json", built.summary)
    own = [Path(p) for p in (host(blob.path) if callable(host) else ())]      # first: the model's host script
    files = [pipeline, blob.path.with_name("run_on_oak.py"), blob.path.with_name("run_on_oak.json"), *own]
    details = {"nodes": list(built.nodes), "blob": blob.path.name, "inputs": built.inputs, "outputs": built.outputs,
               "host_script": own[0].name if own else "run_on_oak.py"}
    histogram = dict(zip(built.nodes, [1] * len(built.nodes)))
    manifest = update_manifest(folder, "depthai", {
        "files": [f.name for f in files], "source": {"path": str(blob.path), "sha256": sha256_file(blob.path)},
        "details": details, "op_histogram": histogram, "versions": package_versions("depthai")})
    return ExportResult(path=pipeline, format="depthai", files=tuple(files), parity=None, op_histogram=histogram,
                        details=details, manifest=manifest)
