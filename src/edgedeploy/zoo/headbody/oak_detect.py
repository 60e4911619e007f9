#!/usr/bin/env python3
"""Detect heads and bodies with the head/body detector's MyriadX blob on a Luxonis OAK and draw the boxes.

Written next to the blob by edgedeploy's DepthAI export (``--to blob,depthai``) as ``detect_on_oak.py``, with:
``run_on_oak.py`` / ``run_on_oak.json`` (the generic XLinkIn -> NeuralNetwork -> XLinkOut pipeline, frame reading and
output-tensor decoding this script imports), ``detect_on_oak.json`` (decode settings) and ``headbody_postprocess.py``
(a verbatim copy of ``edgedeploy.zoo.headbody.postprocess``: peaks, boxes, NMS). The post-processing is
edgedeploy's own when edgedeploy is importable, else that copy, so a camera host needs only numpy, opencv-python
and depthai 2.x; either way the boxes are the ones edgedeploy's evaluation computes.

Usage:  python detect_on_oak.py --source oak              the OAK's own camera: ColorCamera -> ImageManip (GRAY8
                                                           1280x352) -> NeuralNetwork, frames and results to the host
        python detect_on_oak.py --source 0|clip.mp4|dir/  host frames (camera index, video, image or image folder)
                                                           sent over XLinkIn as U8 1x352x1280 grayscale
        python detect_on_oak.py --source dir/ --model headbody.xml   no device: the same frames, decode and drawing
                                                           through OpenVINO (.xml) or ONNX Runtime (.onnx) on the host
Add --out DIR to write annotated PNGs and detections.json, --show to open a window.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

import run_on_oak as oak  # the generic host script beside this one (Python puts a script's folder on sys.path)

HERE = Path(__file__).resolve().parent

try:
    from edgedeploy.zoo.headbody.postprocess import DecodeConfig, decode
    POSTPROCESS = "edgedeploy"
except ImportError:         # no edgedeploy on the camera host: the verbatim copy written beside this script
    from headbody_postprocess import DecodeConfig, decode  # type: ignore[no-redef]
    POSTPROCESS = "copy"

SETTINGS = json.loads((HERE / "detect_on_oak.json").read_text())
CATEGORIES = tuple(SETTINGS["categories"])
COLORS = {0: (40, 40, 230), 1: (40, 200, 40)}            # BGR: head red, body green (as the report's overlays)
PREVIEW = "frames"                                        # the camera pipeline's stream of the frames it ran on


def decode_config() -> Any:
    """The export's decode settings (score threshold, NMS IoU, stride, detections per frame)."""
    return DecodeConfig(**SETTINGS["decode"])


def output_map(values: dict[str, np.ndarray]) -> np.ndarray:
    """The network's one output as its (1, 6, h, w) map, from the flat tensors ``oak.decode`` returns."""
    name = SETTINGS.get("output") or next(iter(values))
    return values[name].reshape(oak.OUTPUTS[name])


def draw(frame: np.ndarray, detections: Any, threshold: float) -> np.ndarray:
    """A BGR copy of ``frame`` (network size) with the boxes scoring >= ``threshold`` and their labels."""
    import cv2

    canvas = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame.copy()
    for box, score, label in zip(detections.boxes, detections.scores, detections.labels):
        if score < threshold:
            continue
        x, y, w, h = np.round(box).astype(int)
        color = COLORS[int(label)]
        cv2.rectangle(canvas, (x, y), (x + w, y + h), color, 1)
        cv2.putText(canvas, f"{CATEGORIES[int(label)]} {score:.2f}", (x, max(y - 3, 8)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.33, color, 1, cv2.LINE_AA)
    return canvas


def host_runner(model: str) -> Callable[[np.ndarray], np.ndarray]:
    """Run the exported ONNX / OpenVINO IR on this host instead of the OAK (1 thread; a U8 input gets the raw
    frame, a float one the frame / 255): checks the host side end to end without a device."""
    path = Path(model)
    if path.suffix == ".xml":
        import openvino as ov

        compiled = ov.Core().compile_model(str(path), "CPU", {"PERFORMANCE_HINT": "LATENCY",
                                                              "INFERENCE_PRECISION_HINT": "f32",
                                                              "INFERENCE_NUM_THREADS": 1})
        u8 = compiled.input(0).get_element_type() == ov.Type.u8
        return lambda planar: compiled(_feed(planar, u8))[compiled.output(0)]
    if path.suffix == ".onnx":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        name, u8 = sess.get_inputs()[0].name, sess.get_inputs()[0].type == "tensor(uint8)"
        return lambda planar: sess.run(None, {name: _feed(planar, u8)})[0]
    sys.exit(f"--model {model}: give the exported .xml (OpenVINO IR) or .onnx file")


def _feed(planar: np.ndarray, u8: bool) -> np.ndarray:
    return planar[None] if u8 else planar[None].astype(np.float32) / 255.0


def make_camera_pipeline(dai: Any, blob_path: str, width: int, height: int, threads: int = 2) -> Any:
    """The OAK's colour camera -> ImageManip (GRAY8 at the network size) -> NeuralNetwork -> XLinkOut, with the
    frames the network saw on a second XLinkOut (built without a device)."""
    pipeline = dai.Pipeline()
    cam = pipeline.create(dai.node.ColorCamera)
    cam.setBoardSocket(dai.CameraBoardSocket.CAM_A)
    cam.setResolution(dai.ColorCameraProperties.SensorResolution.THE_1080_P)
    cam.setPreviewSize(width, height)                     # a wide strip of the sensor, as the 180-degree camera
    cam.setInterleaved(False)
    cam.setFps(30)
    manip = pipeline.create(dai.node.ImageManip)
    manip.initialConfig.setFrameType(dai.ImgFrame.Type.GRAY8)
    manip.setMaxOutputFrameSize(width * height)
    nn = pipeline.create(dai.node.NeuralNetwork)
    nn.setBlobPath(str(blob_path))
    nn.setNumInferenceThreads(threads)
    nn.input.setBlocking(False)
    nn.input.setQueueSize(1)                              # always the newest frame: no latency build-up
    xout, preview = pipeline.create(dai.node.XLinkOut), pipeline.create(dai.node.XLinkOut)
    xout.setStreamName(oak.STREAM_OUT)
    preview.setStreamName(PREVIEW)
    cam.preview.link(manip.inputImage)
    manip.out.link(nn.input)
    nn.out.link(xout.input)
    nn.passthrough.link(preview.input)
    return pipeline


def _device_frames(args: argparse.Namespace) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frame the network saw, its raw output map) from an attached OAK: its camera or host frames over XLink."""
    import depthai as dai

    if args.source == "oak":
        pipeline = make_camera_pipeline(dai, args.blob, oak.WIDTH, oak.HEIGHT)
    else:
        pipeline = oak.make_pipeline(dai, args.blob, oak.WIDTH, oak.HEIGHT, oak.CHANNELS, 1, 2, oak.STREAM_IN,
                                     oak.STREAM_OUT)
    with dai.Device(pipeline) as device:
        q_out = device.getOutputQueue(oak.STREAM_OUT, maxSize=4, blocking=True)
        if args.source == "oak":
            q_frames = device.getOutputQueue(PREVIEW, maxSize=4, blocking=True)
            for _ in range(args.frames):
                frame = q_frames.get().getFrame()
                yield frame, output_map(oak.decode(q_out.get()))
            return
        q_in = device.getInputQueue(oak.STREAM_IN)
        for frame in oak.read_frames(args.source, args.frames):
            planar = oak.to_planar(frame)
            msg = dai.ImgFrame()
            msg.setType(dai.ImgFrame.Type.GRAY8)
            msg.setWidth(oak.WIDTH)
            msg.setHeight(oak.HEIGHT)
            msg.setData(planar.reshape(-1))
            q_in.send(msg)
            yield planar[0], output_map(oak.decode(q_out.get()))


def _host_frames(args: argparse.Namespace) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    infer = host_runner(args.model)
    for frame in oak.read_frames(args.source, args.frames):
        planar = oak.to_planar(frame)
        yield planar[0], infer(planar)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the detector over the source, print one line per frame and return the detections of every frame."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="oak", help="oak (the device's camera), a camera index, video file, "
                        "image file or image folder")
    parser.add_argument("--frames", type=int, default=300, help="frames to process at most")
    parser.add_argument("--blob", default=str(oak.BLOB), help="blob to run on the OAK")
    parser.add_argument("--model", help="run this .xml / .onnx on the host instead of the OAK (no device needed)")
    parser.add_argument("--threshold", type=float, default=SETTINGS["draw_threshold"], help="score of boxes drawn")
    parser.add_argument("--out", help="folder for annotated PNGs and detections.json")
    parser.add_argument("--show", action="store_true", help="show the annotated frames in a window")
    args = parser.parse_args(argv)
    if args.model and args.source == "oak":
        parser.error("--source oak is the device's camera; with --model give frames (camera index, video, images)")
    import cv2

    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    frames = _host_frames(args) if args.model else _device_frames(args)
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for n, (frame, raw) in enumerate(frames):
        det = decode(raw, decode_config(), image_hw=frame.shape[:2])[0]
        rows.append({"frame": n, **det.to_dict()})
        shown = int((det.scores >= args.threshold).sum())
        print(f"frame {n}: {shown} box(es) >= {args.threshold:g}: "
              + ", ".join(f"{CATEGORIES[int(c)]} {s:.2f}" for s, c in zip(det.scores, det.labels) if s >= args.threshold))
        if out or args.show:
            canvas = draw(frame, det, args.threshold)
            if out:
                cv2.imwrite(str(out / f"frame_{n:05d}.png"), canvas)
            if args.show:
                cv2.imshow("head/body", canvas)
                if cv2.waitKey(1) == ord("q"):
                    break
    elapsed = time.perf_counter() - start
    if rows:
        print(f"{len(rows)} frames in {elapsed:.2f} s: {len(rows) / elapsed:.1f} FPS (post-processing: {POSTPROCESS})")
    if out:
        (out / "detections.json").write_text(json.dumps({"postprocess": POSTPROCESS, "frames": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
