"""How each step kind is shown: a registry of renderers, one function per kind.

A new step kind (early exits, NAS, detection ...) adds one function, in its own module if it likes::

    from edgedeploy.report import Section, register_section

    @register_section("early-exit")
    def early_exit(step, run):
        return Section(html=table(...), figures=[...])

Kinds without a renderer are shown by ``generic_section``: a table of their scalar fields.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import figures as fg
from .html import badge, esc, key_values, ms, nbytes, notes, num, si, table
from .rundir import RunRecord, StepRecord


@dataclass
class Section:
    """What a step contributes: its details (HTML) and its plots."""

    html: str
    figures: list[fg.Figure] = field(default_factory=list)


Renderer = Callable[[StepRecord, RunRecord], Section]
_RENDERERS: dict[str, Renderer] = {}


def register_section(kind: str) -> Callable[[Renderer], Renderer]:
    """Decorator: ``fn(step, run) -> Section`` renders steps of ``kind`` (the last registration wins)."""
    def deco(fn: Renderer) -> Renderer:
        _RENDERERS[kind] = fn
        return fn
    return deco


def render_step(step: StepRecord, run: RunRecord) -> Section:
    """The step's section through its kind's renderer (``generic_section`` for unknown kinds)."""
    return _RENDERERS.get(step.kind, generic_section)(step, run)


def generic_section(step: StepRecord, run: RunRecord) -> Section:
    """Any result: its scalar fields (and one level of nested scalars) as a table; lists are counted."""
    rows = []
    for key, value in step.data.items():
        if isinstance(value, dict):
            rows += [(f"{key}.{k}", _scalar(v)) for k, v in value.items() if _scalar(v) is not None]
        elif isinstance(value, list):
            rows.append((key, f"{len(value)} item(s)"))
        elif _scalar(value) is not None:
            rows.append((key, _scalar(value)))
    return Section(table(("field", "value"), [(esc(k), v) for k, v in rows]) if rows else
                   '<p class="muted">no scalar fields in this result</p>')


def _scalar(v: Any) -> str | None:
    if isinstance(v, bool) or v is None:
        return esc(v) if isinstance(v, bool) else None
    if isinstance(v, (int, float)):
        return num(v)
    if isinstance(v, str):
        return esc(v if len(v) <= 200 else v[:200] + "…")
    return None


@register_section("profile")
def profile_section(step: StepRecord, run: RunRecord) -> Section:
    """Totals of a Profile and its heaviest layers."""
    d = step.data
    t = d.get("totals", {})
    sizes = ", ".join(f"{p} {nbytes(b)}" for p, b in (d.get("model_size_bytes") or {}).items())
    kv = [("input", esc(", ".join("×".join(map(str, s)) for s in d.get("input_shapes", [])))),
          ("precision", esc(d.get("precision"))), ("params", num(d.get("params"))), ("MACs", si(d.get("macs"))),
          ("weights", esc(sizes)), ("peak activations", nbytes(d.get("peak_activation_bytes"))),
          ("traffic per frame", nbytes(d.get("traffic_bytes")))]
    if t.get("bandwidth_gbps") is not None:
        kv.append(("bandwidth", f"{num(t['bandwidth_gbps'])} GB/s at {num(d.get('fps'))} FPS"))
    energy = d.get("energy") or {}
    if energy:
        kv.append(("energy per frame", f"{num(t.get('energy_uj'))} µJ <span class=\"muted\">"
                                       f"({esc(energy.get('assumption', ''))})</span>"))
    html = key_values(kv)
    if d.get("unsupported"):
        html += notes([f"WARNING ops counted as 0 MACs: {', '.join(d['unsupported'])}"])
    layers = [r for r in d.get("layers", []) if isinstance(r, dict)]
    figs = [fg.layers_figure(layers, d.get("precision", "fp32"))] if layers else []
    return Section(html, figs)


@register_section("check")
def check_section(step: StepRecord, run: RunRecord) -> Section:
    """Every verdict with its numbers, the roofline and the budget bars."""
    d = step.data
    rows = [(badge(v.get("status", "info")), esc(v.get("name")), _value(v.get("measured")), _value(v.get("limit")),
             esc(v.get("unit")), esc(v.get("message"))) for v in d.get("verdicts", [])]
    html = (f'<p class="verdict">{badge(d.get("status", "UNKNOWN"))}{esc(d.get("model"))} on '
            f'<b>{esc(d.get("target"))}</b> at {esc(d.get("precision"))}: estimated {ms(d.get("latency_ms"))} per '
            f'frame</p>' + table(("status", "check", "measured", "limit", "unit", "why"), rows, numeric=(2, 3))
            + notes(d.get("notes", [])))
    figs = [f for f in (fg.budget_figure(d.get("verdicts", []), str(d.get("target"))),) if f is not None]
    if d.get("layers"):
        peak, bw = _roof(d)
        figs.append(fg.roofline_figure(d, peak, bw))
    return Section(html, figs)


def _value(v: Any) -> str:
    return num(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else esc(v if v is not None else "-")


def _roof(check: dict[str, Any]) -> tuple[float | None, float | None]:
    """The target's peak ops/s at the checked precision and its usable bandwidth (bytes/s), when it loads."""
    from ..errors import EdgeDeployError
    from ..targets.target import Target

    try:
        tgt = Target.load(str(check.get("target")))
    except (EdgeDeployError, OSError):
        return None, None
    prec = check.get("precision")
    peak_prec = prec if prec in tgt.peak_ops_per_s else tgt.precisions[0]
    return float(tgt.peak_ops_per_s[peak_prec]), tgt.usable_bandwidth_gbps * 1e9


@register_section("quantize")
def quantize_section(step: StepRecord, run: RunRecord) -> Section:
    """Before/after size, accuracy, latency, energy and per-output error; SQNR per layer."""
    d = step.data

    def ratio(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    rows = [("size", nbytes(d.get("size_before_bytes")), nbytes(d.get("size_after_bytes")),
             f"×{ratio(d.get('compression'), '.2f')}"),
            ("top-1 (%)", num(d.get("accuracy_before"), 4), num(d.get("accuracy_after"), 4),
             f"drop {ratio(d.get('accuracy_drop'), '+.2f')}"),
            (f"latency ({d.get('threads', 1)} thr)", ms(d.get("latency_before_ms")), ms(d.get("latency_after_ms")),
             f"speed-up ×{ratio(d.get('speedup'), '.2f')}"),
            ("energy (MACs)", f"{num((d.get('energy_before_pj') or 0) / 1e6)} µJ",
             f"{num((d.get('energy_after_pj') or 0) / 1e6)} µJ", "")]
    for o in d.get("outputs", []):
        rows.append((f"output '{o.get('name')}'", "", f"max |Δ| {num(o.get('max_abs'))}",
                     f"cos {num(o.get('cosine_mean'), 6)} (min {num(o.get('cosine_min'), 4)})"))
    html = (f"<p>{esc(d.get('mode'))} via <b>{esc(d.get('backend'))}</b></p>"
            + table(("", "before", "after", "change"), [tuple(esc(c) if i == 0 else c for i, c in enumerate(r))
                                                       for r in rows], numeric=(1, 2, 3))
            + notes(d.get("notes", [])))
    fig = fg.sqnr_figure(d.get("layers", []))
    return Section(html, [fig] if fig else [])


@register_section("prune")
def prune_section(step: StepRecord, run: RunRecord) -> Section:
    """Totals before/after and channels kept per layer."""
    d = step.data
    rows = [("params", num(d.get("params_before")), num(d.get("params_after"))),
            ("MACs", si(d.get("macs_before")), si(d.get("macs_after"))),
            ("size (dense)", nbytes(d.get("size_bytes_before")), nbytes(d.get("size_bytes_after")))]
    html = (f"<p>{esc(d.get('granularity'))} pruning, {esc(d.get('scope'))} scope, criterion "
            f"{esc(d.get('criterion'))}, amount {num(d.get('amount'))}; zeros {num(100 * (d.get('sparsity') or 0))}%"
            f"</p>" + table(("", "before", "after"), [(esc(a), b, c) for a, b, c in rows], numeric=(1, 2))
            + notes(list(d.get("notes", [])) + ([f"removed blocks: {', '.join(d['removed'])}"] if d.get("removed")
                                                  else [])))
    fig = fg.channels_figure(d.get("layers", []))
    return Section(html, [fig] if fig else [])


@register_section("distill")
def distill_section(step: StepRecord, run: RunRecord) -> Section:
    """Teacher, student-before and student-after top-1, and the loss curves."""
    d = step.data
    cfg = d.get("config") or {}
    html = key_values([("teacher top-1", f"{num(d.get('teacher_top1'), 4)} %"),
                       ("student before", f"{num(d.get('before_top1'), 4)} %"),
                       ("student after", f"<b>{num(d.get('after_top1'), 4)} %</b>"),
                       ("config", esc(", ".join(f"{k}={v}" for k, v in cfg.items() if not isinstance(v, (dict, list))
                                                )))])
    fig = fg.curves_figure([(f"distill (step {step.index})", d.get("history", []))], "Distillation curves")
    return Section(html, [fig] if fig else [])


@register_section("train")
def train_section(step: StepRecord, run: RunRecord) -> Section:
    """Final metrics and the loss curve."""
    d = step.data
    html = key_values([(k, num(v, 4)) for k, v in (d.get("metrics") or {}).items()]) if d.get("metrics") else ""
    fig = fg.curves_figure([(f"train (step {step.index})", d.get("history", []))], "Training curve")
    return Section(html or '<p class="muted">no metrics</p>', [fig] if fig else [])


@register_section("evaluate")
def evaluate_section(step: StepRecord, run: RunRecord) -> Section:
    """The metrics of the evaluated model and of each artifact, one row each."""
    from .variants import evaluate_rows

    rows = evaluate_rows(step.data)
    if not rows:
        return Section('<p class="muted">no metrics</p>')
    keys = list(dict.fromkeys(k for r in rows for k in r if k != "variant"))
    html = table(["model / artifact", *keys], ([esc(r.get("variant", "")), *(num(r.get(k), 4) for k in keys)]
                                               for r in rows), numeric=range(1, len(keys) + 1))
    return Section(html + gallery(step))


def gallery(step: StepRecord) -> str:
    """The step's sample pictures (PNG/JPEG files in its folder), embedded, with their captions."""
    import base64

    cards = []
    for shot in step.data.get("samples") or []:
        path = step.find(str(shot.get("file", "")))
        mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(path.suffix.lower()) \
            if path is not None else None
        if mime is None:
            continue
        data = base64.b64encode(path.read_bytes()).decode()
        cards.append(f'<figure class="shot"><img src="data:{mime};base64,{data}" alt="{esc(shot.get("caption"))}" '
                     f'style="max-width:100%"><figcaption>{esc(shot.get("caption", path.name))}</figcaption></figure>')
    return f'<div class="grid">{"".join(cards)}</div>' if cards else ""


@register_section("export")
def export_section(step: StepRecord, run: RunRecord) -> Section:
    """Every artifact: files and sizes, parity against the reference, op histogram, warnings, blob facts."""
    from .variants import export_results

    rows, extra = [], []
    for r in export_results(step):
        files = []
        for f in r.get("files") or [r.get("path", "")]:
            found = step.find(f)
            files.append(f'<span class="nowrap"><code>{esc(found.name if found else f)}</code> '
                         f"{nbytes(found.stat().st_size) if found else '<span class=error>missing</span>'}</span>")
        p = r.get("parity")
        parity = ("-" if not p else f"max |Δ| {num(p.get('max_abs'))} (rel {num(p.get('max_rel'))}) vs "
                  f"{esc(p.get('reference'))} on {esc(p.get('runtime'))}; tol atol {num(p.get('atol'))} + rtol "
                  f"{num(p.get('rtol'))}; inputs: {esc(', '.join(p.get('checked') or []) or '-')}")
        ops = sorted((r.get("op_histogram") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
        rows.append((f"<b>{esc(r.get('format'))}</b>", "<br>".join(files), parity,
                     esc(", ".join(f"{k}×{v}" for k, v in ops[:10]) + (" …" if len(ops) > 10 else ""))))
        extra += list(r.get("warnings") or [])
        blob = (r.get("details") or {}).get("blob")
        if isinstance(blob, dict):
            extra.append("blob read back: " + ", ".join(f"{k}={v}" for k, v in blob.items()
                                                          if not isinstance(v, (dict, list))))
    html = table(("format", "files", "parity", "ops"), rows) + notes(extra)
    return Section(html)


@register_section("bench")
def bench_section(step: StepRecord, run: RunRecord) -> Section:
    """The latency rows of this step (speed-up against its first row)."""
    from .variants import bench_rows

    rows = bench_rows(run, only=step)
    base = rows[0]["median_ms"] if rows else 1.0
    body = [(esc(r["variant"]), f"<code>{esc(str(r.get('artifact', '')).rsplit('/', 1)[-1])}</code>",
             esc(r.get("runtime")), esc(r.get("threads") or "default"), num(r["median_ms"]), num(r.get("p90_ms")),
             num(r.get("min_ms")), num(r.get("fps")), f"{base / r['median_ms']:.2f}×") for r in rows]
    host = step.data.get("host") or {}
    html = table(("variant", "artifact", "runtime", "threads", "median ms", "p90 ms", "min ms", "FPS", "speed-up"),
                 body, numeric=(3, 4, 5, 6, 7, 8))
    if host:
        html += f'<p class="muted">measured on {esc(host.get("cpu_model"))} ({esc(host.get("cores"))} cores)</p>'
    return Section(html)

