"""edgedeploy.report: one self-contained HTML report of a run, and the graph view of an ONNX file.

``render_report(run_dir)`` reads what ``edgedeploy run`` writes (``run.json`` and ``NN-step/result.json``);
``render_graph_svg(onnx_path)`` draws an ONNX graph as a static SVG; ``register_section(kind)`` adds the
renderer of a new step kind. Heavy imports (matplotlib, onnx, onnxruntime) happen inside the functions.
"""
from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "render_report": ".build", "report_html": ".build", "overall_verdict": ".build",
    "render_graph_svg": ".graph_svg", "node_times": "..runtime.onnxruntime_rt",
    "register_section": ".sections", "Section": ".sections", "generic_section": ".sections",
    "load_run": ".rundir", "RunRecord": ".rundir", "StepRecord": ".rundir",
    "collect_variants": ".variants", "Variant": ".variants",
    "Figure": ".figures", "layered_layout": ".graph_layout", "LayoutConfig": ".graph_layout",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
