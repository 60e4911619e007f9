"""Architectures of published device latency tables, written from their papers and public configs (random init).

They calibrate the targets' latency models (``edgedeploy.targets.calibrate``): Luxonis' RVC2 (MyriadX) table lists
ResNet-18/50 (``zoo.reference``), MobileOne-S0, DeepLabV3 (MobileNetV2 backbone), YOLOv6 R2 n/t/m, YOLOv7-tiny
and YOLOv8 n/s/m. Every model is built in its deploy form (re-parameterized branches already fused, BatchNorm kept:
the compiler folds it) with the output Luxonis' converter leaves on the device: raw per-scale head maps for the
YOLOs (decoding and NMS run on the host), the argmax class map for DeepLab. Reference them as
``edgedeploy.zoo.latency_archs:yolov8n`` (a MODEL string).
"""
from __future__ import annotations

from .classifiers import (mobilenet_v3_large, mobileone_s0, pixel_shuffle_up, resnet101, resnext50_32x4d,
                          squeezenet1_1, transposed_conv_up, wide_resnet50_2)
from .detectors import yolov6m, yolov6n, yolov6t, yolov7t, yolov7t_decoded, yolov8m, yolov8n, yolov8s
from .segmentation import deeplabv3_mnv2

__all__ = ["deeplabv3_mnv2", "mobilenet_v3_large", "mobileone_s0", "pixel_shuffle_up", "resnet101",
           "resnext50_32x4d", "squeezenet1_1", "transposed_conv_up", "wide_resnet50_2", "yolov6m", "yolov6n",
           "yolov6t", "yolov7t", "yolov7t_decoded", "yolov8m", "yolov8n", "yolov8s"]
