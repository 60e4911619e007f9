"""Measured time per ONNX node (ONNX Runtime's profiler), to colour the graph view by where time goes."""
from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

from ..errors import ConfigError


def node_times(onnx_path: str | os.PathLike[str], repeats: int = 20, warmup: int = 5,
               threads: int = 1) -> dict[str, float]:
    """Median kernel time (ms) of every node of an ONNX file on ONNX Runtime (CPU, seeded random inputs).

    Graph optimizations are off so each ONNX node runs as its own kernel and keeps its name; fused kernels
    (what a deployment runs) are faster in total, but could not be put back on the graph's boxes."""
    if repeats < 1 or warmup < 0 or threads < 1:
        raise ConfigError(f"node_times needs repeats >= 1, warmup >= 0, threads >= 1 (got {repeats}, {warmup}, "
                          f"{threads})")
    import onnxruntime as ort

    from ..runtime import load

    session = load(Path(onnx_path), runtime="onnxruntime", threads=threads, optimization="disable")
    arrays = session.example_inputs()
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    with tempfile.TemporaryDirectory(prefix="edgedeploy-node-times-") as tmp:
        so.profile_file_prefix = str(Path(tmp) / "ort")
        profiled = ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])
        feed = {i.name: a for i, a in zip(session.inputs, arrays)}
        for _ in range(warmup + repeats):
            profiled.run(None, feed)
        events = json.loads(Path(profiled.end_profiling()).read_text())
    per: dict[str, list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
            per.setdefault(e["name"][: -len("_kernel_time")], []).append(e["dur"] / 1e3)
    # ORT records every run: each node's first ``warmup`` samples are the warm-up
    return {name: statistics.median(v[warmup:] or v) for name, v in per.items()}
