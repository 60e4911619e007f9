"""The budget verdicts of ``check()``: precision, value range, ops (by name), memory, latency, FPS, bandwidth."""
from __future__ import annotations

import math
from typing import Any

from ..metrics.types import Profile
from .report import Verdict
from .target import Target
from .units import PRECISION_BITS


def precision_verdict(tgt: Target, precision: str, peak_prec: str) -> Verdict:
    ok = precision in tgt.precisions
    msg = (f"{tgt.name} runs {precision}" if ok else
           f"{tgt.name} does not run {precision}; quantize/convert to one of {', '.join(tgt.precisions)} "
           f"(latency below assumes {peak_prec})")
    return Verdict("precision", ok, precision, ", ".join(tgt.precisions), "", msg)


def ops_by_name_verdict(prof: Profile, tgt: Target) -> Verdict:
    """Ops judged by name against the target's lists (a bare Profile, or a target without a compiler check).

    With a compiler check declared, names alone can only refuse (an op the list lacks); "all listed" is
    "unknown", since only the compiler knows whether the whole graph compiles."""
    onnx = prof.source == "onnx"
    compiler = tgt.extras.get("op_check")
    if onnx and tgt.supported_onnx_ops is None and tgt.supported_ops is not None:
        return Verdict("ops", None, None, None, "op types",
                       f"unknown: {tgt.name} lists no ONNX op types (supported_onnx_ops): ops of this ONNX profile "
                       "not checked; add that field to the target YAML or profile the torch model", unknown=True)
    bad: dict[str, list[str]] = {}
    for row in prof.layers:
        if tgt.supports_op(row.op, onnx):
            continue
        inner = [o for o in row.ops if not tgt.supports_op(o, onnx)]
        if row.ops and not inner:
            continue                # e.g. a custom leaf module made only of supported ops
        for op in inner or [row.op]:
            bad.setdefault(op if op == row.op else f"{op} in {row.op}", []).append(row.name)
    parts = [f"{op} (used by {', '.join(names[:3])}{', ...' if len(names) > 3 else ''})" for op, names in bad.items()]
    if compiler is not None and not onnx:
        listed = f"; not in its documented op list: {'; '.join(parts)}" if parts else ""
        return Verdict("ops", None, len(bad), None, "op types",
                       f"unknown: only the {compiler} compiler can judge a PyTorch profile's ops; pass the model "
                       f"(not a Profile) to run it{listed}", unknown=True)
    if not bad:
        n = len({r.op for r in prof.layers})
        if compiler is not None:
            return Verdict("ops", None, 0, None, "op types",
                           f"unknown: all {n} op types are in {tgt.name}'s op table, but the {compiler} "
                           "compiler was not run (pass the model or the .onnx file, not a Profile)", unknown=True)
        msg = (f"{tgt.name} runs every op" if tgt.supported_ops is None else
               f"all {n} op types are supported by {tgt.name}")
        return Verdict("ops", True, 0, 0, "op types", msg)
    hint = tgt.extras.get("unsupported_ops_hint")
    return Verdict("ops", False, len(bad), 0, "op types",
                   f"not supported by {tgt.name}: {'; '.join(parts)}; replace them with supported ops "
                   f"(e.g. swap in hardware-aware blocks){', ' + hint if hint else ''}")


def fp16_range_verdict(ranges: list[Any] | None) -> Verdict:
    """FP16 needs every activation within +-65504 (and well inside it: headroom for other inputs)."""
    from ..metrics.ranges import FP16_MAX

    if ranges is None:
        return Verdict("fp16 range", None, None, FP16_MAX, "", "not checked: value ranges need the torch model "
                       "(not a Profile or an ONNX file)")
    if not ranges:
        return Verdict("fp16 range", None, None, FP16_MAX, "", "no floating-point activations to check")
    worst = ranges[0]
    where = f"{worst.name} ({worst.op})"
    if not math.isfinite(worst.max_abs) or worst.max_abs > FP16_MAX:
        over = [r for r in ranges if not r.max_abs <= FP16_MAX]
        return Verdict("fp16 range", False, worst.max_abs, FP16_MAX, "",
                       f"{len(over)} layer(s) overflow fp16 (|x| up to {worst.max_abs:.4g} in {where}): they would "
                       "become inf on the device; rescale (normalize inputs, add a norm layer) or keep them in fp32")
    if worst.max_abs > FP16_MAX / 8:
        return Verdict("fp16 range", True, worst.max_abs, FP16_MAX, "",
                       f"max |x| {worst.max_abs:.4g} in {where} is within fp16 but less than 8x from overflow; "
                       "inputs outside the ones tried may overflow")
    return Verdict("fp16 range", True, worst.max_abs, FP16_MAX, "",
                   f"max |x| {worst.max_abs:.4g} in {where} on random and real-photo inputs fits fp16's +-65504")


def memory_verdict(prof: Profile, tgt: Target, precision: str) -> Verdict:
    weights = prof.model_size_bytes.get(precision, prof.params * PRECISION_BITS[precision] // 8)
    need = weights + prof.peak_activation_bytes
    limit = tgt.usable_memory_bytes
    ok = need <= limit
    msg = (f"weights {size_text(weights)} + peak activations {size_text(prof.peak_activation_bytes)} "
           f"{'fit' if ok else 'do not fit'} in {size_text(limit)} "
           f"({tgt.memory_share:.0%} of {size_text(tgt.memory_bytes)})")
    if not ok:
        msg += "; prune, quantize or reduce the input size"
    return Verdict("memory", ok, need / 1e6, limit / 1e6, "MB", msg)


def latency_verdict(prof: Profile, tgt: Target, est: Any) -> Verdict:
    """The latency budget judged with the estimate's error band: PASS when even its high end fits, FAIL when even
    its low end misses, UNKNOWN ("too close to call") in between. Uncalibrated: the roofline point estimate."""
    n_mem = sum(r.bound == "memory" for r in est.layers)
    if est.calibrated:
        n_cal = len(est.layers)
        detail = f"calibrated per-op-class model over {n_cal} layers, band from leave-one-out" + (
            f" ({est.conditions})" if est.conditions else "")
    else:
        detail = f"uncalibrated roofline over {len(est.layers)} layers ({n_mem} memory-bound)"
    if prof.unsupported:
        detail += f"; ops counted as 0 MACs: {', '.join(sorted(prof.unsupported))}"
    shown = f"{est.text} ({est.low_ms:.3g}-{est.high_ms:.3g} ms)" if est.calibrated else est.text
    if tgt.latency_budget_ms is None:
        return Verdict("latency", None, est.ms, None, "ms", f"estimated {shown}; {tgt.name} sets no latency budget; "
                                                            f"{detail}")
    lo, hi = tgt.latency_budget_ms
    budget = f"the {lo:g}-{hi:g} ms budget"
    if est.high_ms <= hi:
        return Verdict("latency", True, est.ms, hi, "ms", f"estimated {shown} within {budget}; {detail}")
    if est.low_ms > hi:
        return Verdict("latency", False, est.ms, hi, "ms", f"estimated {shown} over {budget}; {detail}; cut "
                                                          "MACs/traffic in the slowest layers")
    return Verdict("latency", None, est.ms, hi, "ms", f"too close to call: estimated {shown} straddles "
                   f"{hi:g} ms ({budget}); measure it on the device; {detail}", unknown=True)


def fps_verdict(tgt: Target, est: Any, fps: float | None) -> Verdict:
    """Frames per second judged with its range: the calibrated throughput where the target's measurements publish
    one (several inferences in flight), else one inference at a time (1000 / latency)."""
    achievable, worst, best = est.fps, est.fps_low, est.fps_high
    shown = f"{achievable:.1f} FPS" + (f" ({worst:.1f}-{best:.1f})" if est.calibrated else "")
    if est.pipelined:
        shown += " (throughput with inferences in flight, as the calibration's measurements ran)"
    required = max([f for f in (fps, tgt.min_fps) if f is not None], default=None)
    if required is None:
        return Verdict("fps", None, achievable, None, "FPS", f"estimated {shown}; no FPS required")
    why = " (Teams/Zoom certification)" if tgt.min_fps is not None and required == tgt.min_fps else ""
    if worst >= required:
        return Verdict("fps", True, achievable, required, "FPS", f"estimated {shown} >= required {required:g}{why}")
    if best < required:
        return Verdict("fps", False, achievable, required, "FPS", f"estimated {shown} < required {required:g}{why}")
    return Verdict("fps", None, achievable, required, "FPS", f"too close to call: estimated {shown} straddles the "
                   f"required {required:g}{why}; measure it on the device", unknown=True)


def bandwidth_verdict(prof: Profile, tgt: Target, fps: float | None) -> Verdict:
    rate = fps if fps is not None else tgt.min_fps
    limit = tgt.usable_bandwidth_gbps
    if rate is None:
        return Verdict("bandwidth", None, prof.traffic_bytes / 1e6, None, "MB/frame",
                       f"{size_text(prof.traffic_bytes)} traffic per frame; give fps to check it against "
                       f"{limit:.3g} GB/s")
    need = prof.traffic_bytes * rate / 1e9
    ok = need <= limit
    msg = (f"{size_text(prof.traffic_bytes)}/frame x {rate:g} FPS = {need:.4g} GB/s "
           f"{'<=' if ok else '>'} {limit:.2f} GB/s ({tgt.bandwidth_share:.0%} of {tgt.memory_bandwidth_gbps:g} "
           "GB/s shared)")
    if not ok:
        msg += "; reduce feature-map sizes early (S2D) or the precision"
    return Verdict("bandwidth", ok, need, limit, "GB/s", msg)


def size_text(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"
