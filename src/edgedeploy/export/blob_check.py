"""The MyriadX compiler's verdict for ``check()``: the graph the blob step compiles, checked the way it compiles.

The blob step exports a torch model with ``blob_onnx_config`` (the TorchScript exporter at opset 13, the
newest the 2021.4 reader knows, unless the user picks another exporter/opset), converts it like
``export_blob`` does, refuses the ops the measured table (``myriadx_ops.yaml``) says the compiler rejects,
and then — when the offline toolchain is installed — really compiles it. Without the toolchain the verdict
is "unknown" unless an op is known to be rejected: a table of single ops cannot promise the whole graph.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ..errors import EdgeDeployError, ToolchainError
from .onnx import OnnxConfig

BLOB_OPSET = 13


def blob_onnx_config(exporter: str | None = None, opset: int | None = None) -> OnnxConfig:
    """How the blob step exports a torch model: the user's exporter/opset, else TorchScript at opset 13."""
    if exporter is None and opset is None:
        return OnnxConfig(exporter="torchscript", opset=BLOB_OPSET)
    return OnnxConfig(exporter=exporter or "dynamo", opset=opset if opset is not None else
                      (BLOB_OPSET if exporter == "torchscript" else None))


def myriad_compiler_check(model_or_path: Any, input_shape: Any, target: Any) -> Any:
    """The MyriadX (OpenVINO 2021.4 MYRIAD plugin) verdict on a model (entry point ``edgedeploy.compilers``)."""
    import onnx

    from ..targets.report import Verdict
    from .blob import BlobConfig
    from .myriad_ops import check_myriad_ops, describe_ops, myriad_op_status
    from .myriad_toolchain import installed
    from .onnx_opset import to_opset

    with tempfile.TemporaryDirectory(prefix="edgedeploy-myriad-check-") as tmp:
        try:
            src = _onnx_for_blob(model_or_path, input_shape, Path(tmp))
            model = to_opset(onnx.load(str(src)), src, [])
        except EdgeDeployError as exc:
            return Verdict("ops", False, "export", 0, "op types", f"no blob can be built: {exc}")
        rejected, unknown = myriad_op_status(model)
        if rejected:
            return Verdict("ops", False, len(rejected), 0, "op types",
                           f"the MyriadX 2021.4 compiler rejects {describe_ops(rejected)} (measured op table)")
        toolchain = installed()
        if toolchain is None:
            why = (f"ops never probed alone: {describe_ops(unknown)}; " if unknown else
                   "every op compiles alone (measured op table), ")
            return Verdict("ops", None, len(unknown), None, "op types",
                           f"unknown: {why}but the whole graph was not compiled (the offline compiler is not "
                           "installed: `edgedeploy toolchain install myriad`)", unknown=True)
        check_myriad_ops(model, src)
        staged = Path(tmp) / "graph13.onnx"
        onnx.save(model, str(staged))
        try:
            toolchain.compile(staged, Path(tmp) / "check.blob", BlobConfig().compiler_config())
        except ToolchainError as exc:
            if "crashed" in str(exc):
                return Verdict("ops", False, "crash", 0, "op types", str(exc))
            return Verdict("ops", None, None, None, "op types", f"unknown: the compiler could not run ({exc})",
                           unknown=True)
        except EdgeDeployError as exc:
            return Verdict("ops", False, "rejected", 0, "op types", str(exc))
    return Verdict("ops", True, 0, 0, "op types", "the MyriadX 2021.4 compiler compiled the graph the blob step "
                                                  "builds (offline, for real)")


def _onnx_for_blob(model_or_path: Any, input_shape: Any, folder: Path) -> Path:
    if isinstance(model_or_path, (str, Path)):
        return Path(model_or_path)
    import torch

    from .onnx import export_onnx

    example = torch.zeros(tuple(input_shape))
    return export_onnx(model_or_path, example, blob_onnx_config(), out=folder, name="for_blob").path
