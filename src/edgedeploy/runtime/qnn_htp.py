"""The QNN HTP backend in child processes: op check, context compile and inference, crash-proof.

The HTP backend is native code that can abort the whole process (a C++ assertion on some graphs), so
every call that touches it runs in a spawned child (``edgedeploy._isolate``). A crash becomes
"the QNN HTP backend (onnxruntime-qnn) crashed on <model> (signal 6, SIGABRT); first crashing node: ...",
the node found by a short bisection over prefixes of the graph, each tried in its own child.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._isolate import _signal_name, run_isolated
from ..errors import ExportError, ToolchainError, UnsupportedOpError
from .qnn_provider import UnsupportedNode, open_session, session_options, torch_module_of

WHAT = "the QNN HTP backend (onnxruntime-qnn)"


def _child_check(path: str, provider_options: dict[str, str]) -> list[UnsupportedNode]:
    try:
        open_session(path, provider_options)
    except UnsupportedOpError as exc:
        return list(getattr(exc, "nodes", []))
    return []


def check_nodes(path: str | os.PathLike[str], provider_options: Mapping[str, str],
                timeout: float = 600.0) -> list[UnsupportedNode]:
    """The nodes of ``path`` QNN HTP rejects (empty when the whole graph runs on QNN), checked in a child process.

    A backend crash raises ToolchainError naming the signal and, when a bisection over prefixes of the graph
    finds it, the first node that makes the backend crash."""
    try:
        return run_isolated(_child_check, str(path), dict(provider_options), what=f"{WHAT} op check",
                            timeout=timeout)
    except ToolchainError as exc:
        code = getattr(exc, "exitcode", None)
        if code is None or code >= 0:
            raise
        culprit = locate_crash(Path(path), dict(provider_options))
        raise ToolchainError(f"{WHAT} crashed (signal {-code}, {_signal_name(-code)}) on {Path(path).name}"
                             f"{culprit}; the compiler would crash the same way: replace that op or keep it on the "
                             "CPU (the calling process is unaffected)") from None


def locate_crash(path: Path, provider_options: dict[str, str], budget: int = 12) -> str:
    """'; first crashing node: Op 'name'' from a binary search over graph prefixes (empty when not found)."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))     # the extractor needs every tensor's info
    nodes = list(model.graph.node)
    lo, hi = 0, len(nodes)            # invariant: prefix of lo nodes does not crash (0 trivially), hi crashes
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(budget):
            if hi - lo <= 1:
                break
            mid = (lo + hi) // 2
            part = _prefix(model, mid, Path(tmp) / f"prefix{mid}.onnx")
            if part is None:
                return ""
            try:
                run_isolated(_child_check, str(part), provider_options, what=WHAT, timeout=300)
                lo = mid
            except ToolchainError as exc:
                if (getattr(exc, "exitcode", None) or 0) >= 0:
                    return ""
                hi = mid
    if hi - lo != 1:
        ops = sorted({n.op_type for n in nodes[lo:hi]} - {"QuantizeLinear", "DequantizeLinear"})
        return f"; it crashes within nodes {lo + 1}-{hi} of {len(nodes)} (ops {', '.join(ops[:6])})" if hi < len(nodes) \
            else ""
    node = nodes[hi - 1]
    module = torch_module_of(node)
    where = f", torch module {module}" if module else ""
    return f"; first crashing node: {node.op_type} {node.name!r} (node {hi} of {len(nodes)}{where})"


def _prefix(model: Any, count: int, dest: Path) -> Path | None:
    """The sub-graph of the first ``count`` nodes, with their last node's outputs as graph outputs."""
    import onnx

    try:
        outputs = [o for o in model.graph.node[count - 1].output if o]
        inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        sub = onnx.utils.Extractor(model).extract_model(inputs, outputs)
        onnx.save(sub, str(dest))
    except Exception:  # noqa: BLE001 - some prefixes cannot stand alone; then we cannot narrow it down
        return None
    return dest


def _child_compile(src: str, dest: str, provider_options: dict[str, str], embed: bool) -> float:
    import time

    import onnxruntime as ort

    so = session_options(provider_options)
    t0 = time.perf_counter()
    try:
        ort.ModelCompiler(so, src, embed_compiled_data_into_model=embed).compile_to_file(dest)
    except Exception as exc:  # noqa: BLE001 - pybind error types
        raise ExportError(f"QNN context compile of {Path(src).name} failed: {str(exc).strip()[:300]}; check the "
                          "op check passes and the SoC/arch pair") from exc
    if not Path(dest).is_file():
        raise ExportError(f"QNN context compile of {Path(src).name} wrote no {Path(dest).name}; rerun with --debug")
    return time.perf_counter() - t0


def compile_context(src: str | os.PathLike[str], dest: str | os.PathLike[str], provider_options: Mapping[str, str],
                    embed: bool = True, timeout: float = 1800.0) -> float:
    """Compile a QDQ (or float, with fp16) ONNX into a QNN EP-context model ``dest``; returns seconds taken."""
    return run_isolated(_child_compile, str(src), str(dest), dict(provider_options), embed,
                        what=f"{WHAT} context compiler", timeout=timeout)


def _child_run(path: str, provider_options: dict[str, str], feeds: list[dict[str, Any]]) -> list[list[Any]]:
    session = open_session(path, provider_options)
    return [session.run(None, feed) for feed in feeds]


def run_on_htp(path: str | os.PathLike[str], provider_options: Mapping[str, str], feeds: list[dict[str, Any]],
               timeout: float = 1800.0) -> list[list[Any]]:
    """Every output of ``path`` on QNN HTP for each feed, computed in a child process."""
    return run_isolated(_child_run, str(path), dict(provider_options), feeds, what=WHAT, timeout=timeout)
