"""Names every target module shares: precisions and their widths, the shipped profiles, op-name spelling."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

#: Bits per value of every precision a target may list.
PRECISION_BITS: Mapping[str, int] = MappingProxyType(
    {"fp32": 32, "bf16": 16, "fp16": 16, "int16": 16, "int8": 8, "int4": 4})
PROFILES_DIR = Path(__file__).parent / "profiles"


def normalize_op(op: str) -> str:
    """Canonical spelling of an op name for matching: ``aten.relu_.default`` and ``ReLU`` both give ``relu``."""
    name = op.rsplit("/", 1)[-1]
    if name.startswith("aten."):
        name = name[5:].split(".", 1)[0]
    return name.rstrip("_").replace("_", "").lower()

#: the latency model's op classes (targets.latency.op_class sorts layers into them; calibrations fit one factor each)
OP_CLASSES = ("conv", "conv_s2", "conv_stem", "conv1x1", "depthwise", "grouped", "dilated", "deconv", "matmul", "bn",
              "relu", "leaky", "act", "eltwise", "pool", "resize", "concat", "permute", "softmax", "reshape", "other",
              "conv_k5", "depthwise_k5")
#: op classes only a calibration with a ``channel_block`` produces (convolutions with kernels of 5 x 5 or more), and
#: the class whose factor, group and timing they take in a calibration that does not name them
CLASS_PARENT: Mapping[str, str] = MappingProxyType({"conv_k5": "conv", "depthwise_k5": "depthwise"})
