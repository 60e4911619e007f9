"""DepthAI (OAK / RVC2) pipelines for a compiled blob: XLinkIn -> NeuralNetwork -> XLinkOut.

Built with depthai 2.x, which creates and serializes a pipeline without a device (3.x removed
XLinkIn/XLinkOut and needs a device for a NeuralNetwork node). ``write_run_on_oak`` writes the
standalone host script (``oak_host.py``) and its config next to the blob, to run it on an attached OAK camera.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import write_bytes_atomic
from ..errors import ArtifactError, ConfigError, ShapeError, ToolchainError
from . import oak_host
from .oak_host import make_pipeline

STREAM_IN, STREAM_OUT = "nn_in", "nn_out"


@dataclass(frozen=True)
class DepthAIPipeline:
    """A built depthai 2.x pipeline, its JSON summary (blob bytes replaced by size + sha256) and the blob's I/O."""

    pipeline: Any
    summary: dict[str, Any]
    nodes: tuple[str, ...]
    blob: Path
    blob_bytes: int
    inputs: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    script: Path | None = None
    streams: dict[str, str] = field(default_factory=lambda: {"in": STREAM_IN, "out": STREAM_OUT})


def _depthai2() -> Any:
    os.environ.setdefault("DEPTHAI_LEVEL", "error")      # its USB warning means nothing offline
    try:
        import depthai as dai
    except ImportError as exc:
        raise ToolchainError("depthai is not installed; pip install 'depthai>=2.28,<3'") from exc
    major = int(str(dai.__version__).split(".")[0])
    if major >= 3 or not hasattr(dai.node, "XLinkIn"):
        raise ToolchainError(f"depthai {dai.__version__} is installed, but depthai 3.x removed XLinkIn/XLinkOut and "
                             "needs a device to create a NeuralNetwork node; pip install 'depthai>=2.28,<3'")
    return dai


def build_depthai_pipeline(blob: str | os.PathLike[str], input_size: tuple[int, int] | None = None,
                           threads: int = 2, write_script: bool = True) -> DepthAIPipeline:
    """Build the XLinkIn -> NeuralNetwork -> XLinkOut pipeline for ``blob`` without hardware.

    ``input_size`` is the (width, height) of the frames the host sends, like DepthAI's own sizes; it
    must match the blob's input (None: take it from the blob). With ``write_script`` a standalone
    ``run_on_oak.py`` is written next to the blob.
    """
    blob = Path(blob)
    if not blob.is_file() or blob.stat().st_size == 0:
        raise ArtifactError(f"blob {blob} does not exist or is empty; compile it with export_blob first")
    if not 1 <= threads <= 2:
        raise ConfigError(f"threads={threads}: an RVC2 NeuralNetwork node runs 1 or 2 inference threads")
    dai = _depthai2()
    try:
        info = dai.OpenVINO.Blob(blob)
    except RuntimeError as exc:
        raise ArtifactError(f"{blob} is not a MyriadX blob depthai can read ({exc}); recompile it") from exc
    # depthai lists dims innermost first (W, H, C, N); we report them in ONNX (N, C, H, W) order.
    inputs = {n: {"shape": list(reversed(t.dims)), "dtype": t.dataType.name} for n, t in info.networkInputs.items()}
    outputs = {n: {"shape": list(reversed(t.dims)), "dtype": t.dataType.name} for n, t in info.networkOutputs.items()}
    if len(inputs) != 1:
        raise ConfigError(f"{blob} has {len(inputs)} inputs {sorted(inputs)}; this pipeline feeds one image input")
    (in_name, meta), = inputs.items()
    shape = meta["shape"]
    if len(shape) != 4:
        raise ConfigError(f"{blob} input {in_name!r} has shape {shape}; the pipeline feeds N x C x H x W images")
    channels, height, width = shape[1], shape[2], shape[3]
    if input_size is not None and tuple(input_size) != (width, height):
        raise ShapeError(f"input_size {tuple(input_size)} does not match the blob's input {in_name!r} "
                         f"({width} x {height}, shape {shape}); pass input_size=({width}, {height})")
    bytes_per_value = {"U8F": 1, "I8": 1, "FP16": 2}.get(meta["dtype"], 4)
    pipeline = make_pipeline(dai, str(blob.resolve()), width, height, channels, bytes_per_value, threads,
                             STREAM_IN, STREAM_OUT)
    raw = pipeline.serializeToJson()
    raw = json.loads(raw) if isinstance(raw, str) else raw
    assets = bytes(raw.pop("assetStorage", []))
    summary = {**raw, "assetStorage": {"bytes": len(assets), "sha256": hashlib.sha256(assets).hexdigest()}}
    nodes = tuple(n[1]["name"] for n in summary["pipeline"]["nodes"])
    script = None
    if write_script:
        script = write_run_on_oak(blob, (width, height), channels, meta["dtype"].replace("U8F", "U8"),
                                  {n: o["shape"] for n, o in outputs.items()}, in_name)
    return DepthAIPipeline(pipeline=pipeline, summary=summary, nodes=nodes, blob=blob,
                           blob_bytes=blob.stat().st_size, inputs=inputs, outputs=outputs, script=script)




def write_run_on_oak(blob: str | os.PathLike[str], input_size: tuple[int, int], channels: int = 3,
                     input_precision: str = "U8", outputs: dict[str, list[int]] | None = None,
                     input_name: str = "input") -> Path:
    """Write ``run_on_oak.py`` (the host script, ``export/oak_host.py`` verbatim) and its ``run_on_oak.json``
    next to ``blob``: the same pipeline, fed from a camera, video or image."""
    from .. import __version__
    from .._io import write_json_atomic

    blob = Path(blob)
    write_json_atomic(blob.with_name("run_on_oak.json"), {
        "blob": blob.name, "width": input_size[0], "height": input_size[1], "channels": channels,
        "input_name": input_name, "input_precision": input_precision.upper(), "outputs": dict(outputs or {}),
        "stream_in": STREAM_IN, "stream_out": STREAM_OUT, "written_by": f"edgedeploy {__version__}"})
    return write_bytes_atomic(blob.with_name("run_on_oak.py"), Path(oak_host.__file__).read_bytes())
