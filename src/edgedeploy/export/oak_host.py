#!/usr/bin/env python3
"""Run a MyriadX blob on a Luxonis OAK (RVC2 / Myriad X) device and print its outputs and FPS.

Written next to the blob by edgedeploy (``build_depthai_pipeline``) together with ``run_on_oak.json``, which
names the blob, its input size, precision and outputs. Needs: pip install "depthai>=2.28,<3" opencv-python numpy
Usage:  python run_on_oak.py --source 0            (camera index)
        python run_on_oak.py --source video.mp4    (video file)
        python run_on_oak.py --source photo.jpg    (one image, sent --frames times)
        python run_on_oak.py --source frames/      (an image folder, each image once)
The pipeline is XLinkIn -> NeuralNetwork -> XLinkOut: frames are read and resized on the host.
This file is also the module edgedeploy builds its pipelines with (``make_pipeline``), so both never differ.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _config() -> dict[str, Any]:
    """``run_on_oak.json`` beside this script (empty when imported from the edgedeploy package)."""
    path = Path(__file__).resolve().with_name("run_on_oak.json")
    return json.loads(path.read_text()) if path.is_file() else {}


CONFIG = _config()
BLOB = Path(__file__).resolve().with_name(CONFIG["blob"]) if CONFIG else None
WIDTH, HEIGHT, CHANNELS = CONFIG.get("width"), CONFIG.get("height"), CONFIG.get("channels")
INPUT_NAME, INPUT_PRECISION = CONFIG.get("input_name"), CONFIG.get("input_precision")   # U8, FP16 or FP32
OUTPUTS = CONFIG.get("outputs", {})     # name -> shape in the ONNX model
STREAM_IN, STREAM_OUT = CONFIG.get("stream_in", "nn_in"), CONFIG.get("stream_out", "nn_out")


def make_pipeline(dai: Any, blob_path: str, width: int, height: int, channels: int = 3,
                  bytes_per_value: int = 1, threads: int = 2, stream_in: str = "nn_in",
                  stream_out: str = "nn_out") -> Any:
    """XLinkIn -> NeuralNetwork(blob) -> XLinkOut, built without a device."""
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


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def read_frames(source, count):
    """Yield up to ``count`` BGR uint8 frames from a camera index, a video file, one image or an image folder."""
    import cv2

    path = Path(source)
    if path.is_dir():                   # every image of the folder once, in name order
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            sys.exit(f"no {'/'.join(IMAGE_SUFFIXES)} images in folder {source}")
        for p in files[:count]:
            image = cv2.imread(str(p))
            if image is None:
                sys.exit(f"cannot read image {p}")
            yield image
        return
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path))
        if image is None:
            sys.exit(f"cannot read image {source}")
        for _ in range(count):
            yield image
        return
    cap = cv2.VideoCapture(int(source) if str(source).isdigit() else str(source))
    if not cap.isOpened():
        sys.exit(f"cannot open video source {source}")
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


_DTYPES = {"FP16": np.float16, "FP32": np.float32, "U8F": np.uint8, "I8": np.int8, "INT": np.int32}


def decode(result):
    """Every output layer of an NNData message as a flat float32 array (whatever its precision)."""
    data = np.asarray(result.getData(), dtype=np.uint8)
    out = {}
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

    pipeline = make_pipeline(dai, args.blob, WIDTH, HEIGHT, CHANNELS, {"U8": 1, "FP16": 2}.get(INPUT_PRECISION, 4),
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
                print(f"frame {n}: {name} shape {values.shape} min {values.min():.4g} "
                      f"max {values.max():.4g} mean {values.mean():.4g}")
        elapsed = time.perf_counter() - start
        if n:
            print(f"{n} frames in {elapsed:.2f} s: {n / elapsed:.1f} FPS (host read + resize + XLink + inference)")


if __name__ == "__main__":
    main()
