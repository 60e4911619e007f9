"""DepthAI (OAK / RVC2) pipelines for a compiled blob: XLinkIn -> NeuralNetwork -> XLinkOut.

Built with depthai 2.x, which creates and serializes a pipeline without a device (3.x removed
XLinkIn/XLinkOut and needs a device for a NeuralNetwork node). ``write_run_on_oak`` writes a
standalone script next to the blob that runs the same pipeline on an attached OAK camera.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import write_bytes_atomic
from ..errors import ArtifactError, ConfigError, ShapeError, ToolchainError

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


def make_pipeline(dai: Any, blob_path: str, width: int, height: int, channels: int = 3,
                  bytes_per_value: int = 1, threads: int = 2, stream_in: str = "nn_in",
                  stream_out: str = "nn_out") -> Any:
    """XLinkIn -> NeuralNetwork(blob) -> XLinkOut (self-contained: copied verbatim into run_on_oak.py)."""
    pipeline = dai.Pipeline()     # the OpenVINO version is taken from the blob
    xin = pipeline.create(dai.node.XLinkIn)
    xin.setStreamName(stream_in)
    xin.setMaxDataSize(width * height * channels * bytes_per_value)
    xin.setNumFrames(4)
    nn = pipeline.create(dai.node.NeuralNetwork)
    nn.setBlobPath(str(blob_path))
    nn.setNumInferenceThreads(threads)   # the RVC2 firmware's default: 2 threads per network
    nn.input.setBlocking(True)
    nn.input.setQueueSize(4)
    xout = pipeline.create(dai.node.XLinkOut)
    xout.setStreamName(stream_out)
    xin.out.link(nn.input)
    nn.out.link(xout.input)
    return pipeline


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


_SCRIPT = '''#!/usr/bin/env python3
"""Run {blob_name} on a Luxonis OAK (RVC2 / Myriad X) device and print its outputs and FPS.

Generated by edgedeploy {version}. Needs: pip install "depthai>=2.28,<3" opencv-python numpy
Usage:  python run_on_oak.py --source 0            (camera index)
        python run_on_oak.py --source video.mp4    (video file)
        python run_on_oak.py --source photo.jpg    (one image, sent --frames times)
The pipeline is XLinkIn -> NeuralNetwork -> XLinkOut: frames are read and resized on the host.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

BLOB = Path(__file__).resolve().with_name({blob_name!r})
WIDTH, HEIGHT, CHANNELS = {width}, {height}, {channels}
INPUT_NAME, INPUT_PRECISION = {input_name!r}, {precision!r}   # U8 frames (preprocessing baked in), FP16 or FP32
OUTPUTS = {outputs!r}               # name -> shape in the ONNX model
STREAM_IN, STREAM_OUT = {stream_in!r}, {stream_out!r}

{make_pipeline}

def read_frames(source, count):
    """Yield up to ``count`` BGR uint8 frames from a camera index, a video file or one image."""
    import cv2

    path = Path(source)
    if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"):
        image = cv2.imread(str(path))
        if image is None:
            sys.exit(f"cannot read image {{source}}")
        for _ in range(count):
            yield image
        return
    cap = cv2.VideoCapture(int(source) if str(source).isdigit() else str(source))
    if not cap.isOpened():
        sys.exit(f"cannot open video source {{source}}")
    try:
        for _ in range(count):
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
    finally:
        cap.release()


def to_planar(frame):
    """Resize to the network size and reorder HWC -> CHW (what the blob's input expects)."""
    import cv2

    frame = cv2.resize(frame, (WIDTH, HEIGHT))
    if CHANNELS == 1 and frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    return np.ascontiguousarray(frame.transpose(2, 0, 1))


_DTYPES = {{"FP16": np.float16, "FP32": np.float32, "U8F": np.uint8, "I8": np.int8, "INT": np.int32}}


def decode(result):
    """Every output layer of an NNData message as a flat float32 array (whatever its precision)."""
    data = np.asarray(result.getData(), dtype=np.uint8)
    out = {{}}
    for tensor in result.getAllLayers():
        dtype = np.dtype(_DTYPES[tensor.dataType.name])
        count = int(np.prod(tensor.dims))
        raw = data[tensor.offset:tensor.offset + count * dtype.itemsize]
        out[tensor.name] = np.frombuffer(raw.tobytes(), dtype=dtype).astype(np.float32)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="0", help="camera index, video file or image file")
    parser.add_argument("--frames", type=int, default=300, help="frames to send")
    parser.add_argument("--blob", default=str(BLOB), help="blob to run")
    args = parser.parse_args(argv)
    import depthai as dai

    pipeline = make_pipeline(dai, args.blob, WIDTH, HEIGHT, CHANNELS, {{"U8": 1, "FP16": 2}}.get(INPUT_PRECISION, 4),
                             2, STREAM_IN, STREAM_OUT)
    with dai.Device(pipeline) as device:
        q_in = device.getInputQueue(STREAM_IN)
        q_out = device.getOutputQueue(STREAM_OUT, maxSize=4, blocking=True)
        start, n = time.perf_counter(), 0
        for frame in read_frames(args.source, args.frames):
            planar = to_planar(frame)
            if INPUT_PRECISION == "U8":
                msg = dai.ImgFrame()
                msg.setType(dai.ImgFrame.Type.BGR888p if CHANNELS == 3 else dai.ImgFrame.Type.GRAY8)
                msg.setWidth(WIDTH)
                msg.setHeight(HEIGHT)
                msg.setData(planar.reshape(-1))
            elif INPUT_PRECISION == "FP16":
                msg = dai.NNData()
                msg.setLayer(INPUT_NAME, planar.astype(np.float16).reshape(-1).tolist())
            else:                       # FP32 input: raw float32 bytes, converted to FP16 on the device
                msg = dai.NNData()
                msg.setData(planar.astype(np.float32).reshape(-1).view(np.uint8))
            q_in.send(msg)
            result = q_out.get()
            n += 1
            for name, values in decode(result).items():
                shape = OUTPUTS.get(name)
                if shape is not None and int(np.prod(shape)) == values.size:
                    values = values.reshape(shape)
                print(f"frame {{n}}: {{name}} shape {{values.shape}} min {{values.min():.4g}} "
                      f"max {{values.max():.4g}} mean {{values.mean():.4g}}")
        elapsed = time.perf_counter() - start
        if n:
            print(f"{{n}} frames in {{elapsed:.2f}} s: {{n / elapsed:.1f}} FPS (host read + resize + XLink + inference)")


if __name__ == "__main__":
    main()
'''


def write_run_on_oak(blob: str | os.PathLike[str], input_size: tuple[int, int], channels: int = 3,
                     input_precision: str = "U8", outputs: dict[str, list[int]] | None = None,
                     input_name: str = "input") -> Path:
    """Write ``run_on_oak.py`` next to ``blob``: the same pipeline, fed from a camera, video or image."""
    from .. import __version__

    blob = Path(blob)
    source = textwrap.dedent(inspect.getsource(make_pipeline))
    text = _SCRIPT.format(blob_name=blob.name, version=__version__, width=input_size[0], height=input_size[1],
                          channels=channels, precision=input_precision.upper(), outputs=dict(outputs or {}),
                          stream_in=STREAM_IN, stream_out=STREAM_OUT, make_pipeline=source, input_name=input_name)
    return write_bytes_atomic(blob.with_name("run_on_oak.py"), text.encode())
