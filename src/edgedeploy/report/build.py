"""``render_report``: one self-contained HTML file from a run folder.

Sections (each left out when the run has no data for it): summary (verdict with numbers, the artifact
shipped and its hashes, host, run time, steps), variants, plots, per-step details, and the graph view of the
exported ONNX. CSS and SVG are inline and a Content-Security-Policy forbids every fetch, so the page opens
offline and makes no request of any kind.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import figures as fg
from .html import badge, esc, key_values, nbytes, num, page, si, table
from .rundir import RunRecord, StepRecord, load_run
from . import adaptive as _adaptive  # noqa: F401  (registers the early-exit and MoD sections)
from . import nas_section as _nas_section  # noqa: F401  (registers the NAS section: Pareto front)
from . import detection as _detection  # noqa: F401  (registers the detection evaluate section)
from .sections import Section, render_step
from .variants import Variant, bench_rows, collect_variants, export_results, shipped_artifact


def render_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Write the run's report (default ``RUN_DIR/report.html``) and return its path."""
    from .._io import check_output_file, write_bytes_atomic

    run = load_run(run_dir)
    dest = check_output_file(Path(out) if out is not None else run.folder / "report.html", "report")
    return write_bytes_atomic(dest, report_html(run).encode("utf-8"))


def report_html(run: RunRecord) -> str:
    """The report of a loaded run as one HTML string."""
    variants = collect_variants(run)
    steps = [(s, _render(s, run)) for s in run.steps if s.has_data]
    figures = _cross_figures(run, variants)
    for s, sec in steps:
        figures += [fg.Figure(f"{f.id}-{s.index}", f.title, f.svg, f.caption) for f in sec.figures]
    sections = [("summary", "Summary", _summary(run, variants))]
    if any(_has_numbers(v) for v in variants):
        sections.append(("variants", "Variants", _variants_table(variants)))
    if figures:
        sections.append(("plots", "Plots", _figures_html(figures)))
    if steps:
        sections.append(("steps", "Steps", "".join(_step_html(s, sec) for s, sec in steps)))
    graph = _graph(run)
    if graph:
        sections.append(("graph", "Graph", graph))
    subtitle = f"target {run.target or '-'} · {len(run.steps)} steps · {run.started or ''}"
    return page(f"edgedeploy report: {run.model}", subtitle, sections)


def _render(step: StepRecord, run: RunRecord) -> Section:
    """The step's section; a result its renderer cannot read is reported in place, not fatal to the report."""
    try:
        return render_step(step, run)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as exc:
        return Section(f'<p class="error">this {esc(step.kind)} result could not be shown ({esc(type(exc).__name__)}: '
                       f"{esc(exc)}); check {esc(step.folder.name)}/result.json against the step's result class</p>")


def _has_numbers(v: Variant) -> bool:
    return any(x is not None for x in (v.params, v.macs, v.size_bytes, v.accuracy)) or bool(v.latency or v.exports)


def overall_verdict(run: RunRecord) -> tuple[str, str, list[str]]:
    """The run's status (the worst of each target's last check; FAIL when a step failed), a headline, and the
    lines behind it."""
    status, head, lines = _checked(run)
    if run.interrupted:
        lines = [f"the run was interrupted ({run.interrupted}); never ran: {', '.join(run.never_ran) or 'none'}; "
                 "finish it with `edgedeploy run RECIPE --out DIR --resume`", *lines]
        return ("FAIL" if status == "FAIL" else "UNKNOWN"), f"incomplete run: {head}", lines
    return status, head, lines


def _checked(run: RunRecord) -> tuple[str, str, list[str]]:
    """The verdict from the check steps and failed steps alone."""
    checks = run.of_kind("check")
    failed = [s for s in run.steps if s.status == "failed"]
    lines = [f"step {s.index} ({s.name}) failed: {s.error or 'no error recorded'}" for s in failed]
    if not checks:
        status = "FAIL" if failed else "UNKNOWN"
        return status, "no check step: the target's budgets were not verified", lines
    last = {str(s.data.get("target")): s.data for s in checks}          # each target's last check, in order
    judged = [_one_target(run.model, c, prefix=len(last) > 1) for c in last.values()]
    statuses = [j[0] for j in judged]
    status = "FAIL" if failed or "FAIL" in statuses else next((x for x in statuses if x != "PASS"), "PASS")
    head = "; ".join(j[1] for j in judged)
    if failed:
        head += f"; {len(failed)} step(s) failed"
    return status, head, [x for j in judged for x in j[2]] + lines


def _one_target(model: str, c: dict[str, Any], prefix: bool) -> tuple[str, str, list[str]]:
    """(status, headline, lines) of one check result; lines name the target when a run checks several."""
    verdicts = c.get("verdicts", [])
    bad = [v for v in verdicts if v.get("status") == "FAIL"]
    unknown = [v for v in verdicts if v.get("status") == "UNKNOWN"]
    who = f"{model} on {c.get('target')}"
    if bad:
        head = f"{who}: fails {', '.join(v['name'] for v in bad)}"
    elif unknown:
        head = f"{who}: fits every checked budget, but {', '.join(v['name'] for v in unknown)} could not be verified"
    else:
        head = f"{who}: meets every budget ({len(verdicts)} checks at {c.get('precision')})"
    tag = f"{c.get('target')}: " if prefix else ""
    numbers = " · ".join(t for t in (verdict_numbers(v) for v in verdicts) if t)
    lines = ([tag + numbers] if numbers else []) + [f"{tag}{v.get('status')} {v.get('name')}: {v.get('message')}"
                                                    for v in bad + unknown]
    return str(c.get("status", "UNKNOWN")), head, lines


def verdict_numbers(v: dict[str, Any]) -> str:
    """'latency 0.0366 ms ≤ 30 ms' for a verdict with a measured value and a non-zero limit ('' otherwise)."""
    m, lim = v.get("measured"), v.get("limit")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (m, lim)) or not lim:
        return ""
    up = fg.higher_is_better(v.get("name", ""), m, lim, v.get("passed"))
    ok = v.get("passed")
    sign = ("≥" if ok is not False else "<") if up else ("≤" if ok is not False else ">")
    unit = f" {v.get('unit')}" if v.get("unit") else ""
    return f"{v.get('name')} {num(m)}{unit} {sign} {num(lim)}{unit}"


def _summary(run: RunRecord, variants: list[Variant]) -> str:
    status, head, lines = overall_verdict(run)
    html = f'<p class="verdict">{badge(status)}<b>{esc(head)}</b></p>'
    if lines:
        html += '<ul class="facts">' + "".join(f"<li>{esc(x)}</li>" for x in lines) + "</ul>"
    kv = [("model", esc(run.model)), ("target", esc(run.target or "-"))]
    ship = shipped_artifact(run)
    if ship:
        files = "<br>".join(f"<code>{esc(f['name'])}</code> {nbytes(f['bytes']) if f['bytes'] else ''} "
                            f"sha256 <code>{esc(f['sha256'] or 'file not found')}</code>" for f in ship["files"])
        kv.append(("shipped", f"<b>{esc(ship['format'])}</b> artifact of variant {esc(ship['variant'])} "
                              f"(step {ship['step']})<br>{files}"))
        best = next((v.fastest() for v in variants if v.name == ship["variant"] and v.fastest()), None)
        if best:
            kv.append(("measured", f"{num(best[1])} ms median on {esc(best[0])} (this host)"))
    host = run.host
    if host:
        kv.append(("host", esc(f"{host.get('cpu_model', '?')} · {host.get('cores', '?')} cores · int8: "
                               f"{host.get('int8_accel', '?')} · {host.get('machine', '')}")))
    kv.append(("run time", esc(f"{run.started or '?'} → {run.finished or '?'} ({run.seconds:.1f} s in steps)")))
    if run.versions:
        kv.append(("versions", esc(", ".join(f"{k} {v}" for k, v in run.versions.items()))))
    rows = [(str(s.index), f'<a href="#step-{s.index}">{esc(s.name)}</a>' if s.has_data else esc(s.name),
             esc(s.kind), esc(s.variant or ""), badge(s.status),
             num(s.seconds) if s.seconds is not None else "-", f'<span class="error">{esc(s.error)}</span>'
             if s.error else "") for s in run.steps]
    rows += [(str(len(rows) + i + 1), esc(name), esc(name.split("-", 1)[-1]), "", badge("not run"), "-",
              "the run was interrupted before this step finished") for i, name in enumerate(run.never_ran)]
    return html + key_values(kv) + "<h3>Steps</h3>" + table(("#", "step", "kind", "variant", "status", "s", "error"),
                                                           rows, numeric=(0, 5))


def _variants_table(variants: list[Variant]) -> str:
    headers = ["variant", "accuracy", "params", "MACs", "size", "traffic/frame", "energy/frame",
               "measured latency p50 / p90", "exports (parity)"]
    rows = []
    for v in variants:
        lat = "<br>".join(f'<span class="nowrap">{num(p50)} / {num(p90)} ms <span class="muted">{esc(k)}</span>'
                          f"</span>" for k, (p50, p90) in v.latency.items()) or "-"
        acc = (f'<span title="from the {esc(v.sources.get("accuracy", ""))}">{num(v.accuracy, 4)} '
               f'{esc(v.accuracy_unit)}</span>' if v.accuracy is not None else "-")
        exports = "<br>".join(_parity_text(e) for e in v.exports) or "-"
        rows.append([f'<b class="nowrap">{esc(v.name)}</b>', acc, num(v.params), si(v.macs), nbytes(v.size_bytes),
                     nbytes(v.traffic_bytes), "-" if v.energy_uj is None else f"{num(v.energy_uj)} µJ", lat, exports])
    return (table(headers, rows, numeric=(1, 2, 3, 4, 5, 6, 7))
            + '<p class="muted">Size: the profiled precision\'s weights, the pruned model\'s dense weights or the '
              "quantized file. Latency: measured on this host by the bench steps (runtime, threads). Hover an "
              "accuracy for its source, a parity for its reference and tolerance.</p>")


def _parity_text(e: dict[str, Any]) -> str:
    """'onnx ✓ 4.8e-06' with the reference and tolerance on hover."""
    p = e.get("parity")
    if not p:
        return f'<span class="nowrap">{esc(e.get("format"))}: not checked</span>'
    tip = (f"max abs {p.get('max_abs')} (max rel {p.get('max_rel')}) vs {p.get('reference')} on {p.get('runtime')}; "
           f"tolerance atol {p.get('atol')} + rtol {p.get('rtol')} x max|ref|")
    mark = "✓" if parity_ok(p) else "✗"
    return (f'<span class="nowrap" title="{esc(tip)}">{esc(e.get("format"))} {mark} max |Δ| '
            f'{num(p.get("max_abs"))}</span>')


def parity_ok(p: dict[str, Any]) -> bool:
    """Every output within atol + rtol x max|reference| (the exporters' own gate)."""
    outs = p.get("outputs") or {"all": {"max_abs": p.get("max_abs", 0.0), "ref_max": 0.0}}
    atol, rtol = float(p.get("atol") or 0.0), float(p.get("rtol") or 0.0)
    return all(float(o.get("max_abs") or 0.0) <= atol + rtol * float(o.get("ref_max") or 0.0) for o in outs.values())


def _cross_figures(run: RunRecord, variants: list[Variant]) -> list[fg.Figure]:
    """Plots across steps: measured latency of every bench row, and accuracy vs latency per variant."""
    out = []
    rows = bench_rows(run)
    if rows:
        out.append(fg.latency_figure(rows))
    points = [(v.name, v.fastest()[1], v.accuracy, v.fastest()[0]) for v in variants
              if v.accuracy is not None and v.fastest()]
    if len(points) >= 2:
        out.append(fg.pareto_figure(points))
    return out


def _figures_html(figures: list[fg.Figure]) -> str:
    cards = "".join(f'<figure id="{esc(f.id)}" class="plot"><h3>{esc(f.title)}</h3>{f.svg}'
                    f"<figcaption>{esc(f.caption)}</figcaption></figure>" for f in figures)
    return f'<div class="grid">{cards}</div>'


def _step_html(s: StepRecord, sec: Section) -> str:
    head = (f'<h3 id="step-{s.index}">{s.index}. {esc(s.name)} <span class="muted">({esc(s.kind)}'
            f'{", variant " + esc(s.variant) if s.variant else ""})</span> {badge(s.status)}</h3>')
    return f'<div class="step">{head}{sec.html}</div>'


def exported_onnx(run: RunRecord) -> Path | None:
    """The ONNX file of the last export step that wrote one (what the graph view draws): the plain ONNX export
    before a file that merely wraps a compiled model in ONNX (a QNN context model is one EPContext node)."""
    for plain in (True, False):
        for s in reversed(run.of_kind("export")):
            for r in reversed(export_results(s)):
                path = str(r.get("path", ""))
                wanted = r.get("format") == "onnx" if plain else path.endswith(".onnx")
                if wanted:
                    found = s.find(path)
                    if found is not None:
                        return found
    return None


def _graph(run: RunRecord) -> str:
    from ..errors import EdgeDeployError
    from .graph_svg import render_graph_svg

    path = exported_onnx(run)
    if path is None:
        return ""
    try:
        svg = render_graph_svg(path, color_by="macs")
    except EdgeDeployError as exc:
        return f'<p class="error">the graph of {esc(path.name)} cannot be drawn: {esc(exc)}</p>'
    return (f'<p class="muted">The exported <code>{esc(path.name)}</code>, coloured by MACs per node; hover a box for '
            f'its tensors. Colour by measured time: <code>edgedeploy view {esc(path.name)} --out graph.svg --color '
            f'time</code>.</p><div class="graph">{svg}</div>')
