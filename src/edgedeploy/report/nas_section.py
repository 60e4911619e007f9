"""The report section of a ``nas`` step: the Pareto front as a table and a plot, and the hypervolume per generation.

Registered with ``register_section("nas")`` on import; ``report/build.py`` imports it, so ``edgedeploy report OUT``
renders the run folder of ``edgedeploy nas run``.
"""
from __future__ import annotations

from typing import Any

from . import figures as fg
from .html import esc, key_values, ms, notes, num, si, table
from .rundir import RunRecord, StepRecord
from .sections import Section, register_section

_UNITS = {"accuracy": "%", "latency": "ms", "latency_pred": "ms", "energy": "µJ", "traffic": "B"}


def _label(objective: str) -> str:
    unit = _UNITS.get(objective)
    return f"{objective} ({unit})" if unit else objective


def pareto_scatter(trials: list[dict[str, Any]], front: list[int], chosen: int | None, x: str, y: str) -> fg.Figure:
    """Every complete trial in the plane of two objectives; the front joined and the chosen one ringed."""
    done = [t for t in trials if t.get("state") == "COMPLETE" and x in t.get("values", {}) and y in t["values"]]

    def draw(done: list[dict[str, Any]]) -> Any:
        fig, (ax,) = fg._new(7.4, 3.8)
        ax.grid(axis="y", color="#e5e7eb", linewidth=0.6)
        on = [t for t in done if t["number"] in front]
        off = [t for t in done if t["number"] not in front]
        ax.scatter([t["values"][x] for t in off], [t["values"][y] for t in off], s=22, color="#94a3b8",
                   label="dominated", zorder=2)
        pts = sorted((t["values"][x], t["values"][y]) for t in on)
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=40, color=fg.COLORS[0], edgecolor="#111827",
                   linewidth=0.7, label="Pareto front", zorder=3)
        if len(pts) > 1:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=fg.COLORS[0], linestyle="--", linewidth=1,
                    zorder=2)
        pick = next((t for t in on if t["number"] == chosen), None)
        if pick is not None:
            ax.scatter([pick["values"][x]], [pick["values"][y]], s=160, facecolor="none", edgecolor=fg.COLORS[1],
                       linewidth=1.6, label=f"chosen (trial {chosen})", zorder=4)
        ax.set_xlabel(_label(x))
        ax.set_ylabel(_label(y))
        ax.legend(loc="best")
        return fig

    return fg.Figure("fig-nas-pareto", f"NAS: {y} vs {x}", fg._svg(draw, done, salt="nas-pareto"),
                     f"{len(done)} trained candidates; the dashed line joins the Pareto front (no other candidate is "
                     "better in every objective); the ring marks the architecture that was built.")


def hypervolume_figure(history: list[dict[str, float]]) -> fg.Figure | None:
    """Hypervolume of the front after each generation (how much the search still improves)."""
    if len(history) < 1:
        return None

    def draw(history: list[dict[str, float]]) -> Any:
        fig, (ax,) = fg._new(7.4, 2.8)
        ax.grid(axis="y", color="#e5e7eb", linewidth=0.6)
        ax.plot([h["trials"] for h in history], [h["hypervolume"] for h in history], marker="o", color=fg.COLORS[2])
        ax.set_xlabel("complete trials (end of each generation)")
        ax.set_ylabel("hypervolume")
        return fig

    return fg.Figure("fig-nas-hv", "NAS: hypervolume per generation", fg._svg(draw, history, salt="nas-hv"),
                     "Objectives scaled from their ideal (100 % accuracy, zero cost) to the worst trained candidate; "
                     "reference point 1.1 on every axis.")


@register_section("nas")
def nas_section(step: StepRecord, run: RunRecord) -> Section:
    """Counts, the Pareto front table, the chosen architecture as built, and the two plots."""
    d = step.data
    objectives = list(d.get("objectives") or [])
    trials = d.get("trials") or []
    by_number = {t["number"]: t for t in trials}
    front = [n for n in d.get("pareto") or [] if n in by_number]
    counts = d.get("counts") or {}
    hv = d.get("hypervolume") or []
    kv = [("study", f"{esc(d.get('study'))} on <code>{esc(d.get('storage'))}</code>"),
          ("sampler", esc(d.get("sampler"))), ("objectives", esc(", ".join(objectives))),
          ("trials", esc(", ".join(f"{k} {v}" for k, v in counts.items() if k != "finished"))),
          ("search time", f"{num(d.get('seconds'))} s")]
    if hv:
        kv.append(("hypervolume", num(hv[-1].get("hypervolume"), 4)))
    rows = []
    for n in front:
        t = by_number[n]
        m = t.get("metrics") or {}
        rows.append((f"{n}{' ★' if n == d.get('chosen') else ''}", f"<code>{esc(t.get('key'))}</code>",
                     *(num(t["values"].get(o), 4) for o in objectives), num(m.get("params")), si(m.get("macs"))))
    html = key_values(kv) + "<h3>Pareto front</h3>" + table(
        ("trial", "architecture", *(_label(o) for o in objectives), "params", "MACs"), rows,
        numeric=tuple(range(2, 4 + len(objectives))))
    final = d.get("final")
    if final:
        html += "<h3>Chosen architecture, retrained and exported</h3>" + key_values([
            ("architecture", f"<code>{esc(final.get('arch'))}</code> (trial {esc(final.get('trial'))})"),
            ("accuracy", f"{num(final.get('accuracy'), 4)} % after {esc(final.get('epochs'))} epochs"),
            ("measured latency", f"{ms(final.get('latency_ms'))} on {esc(final.get('runtime'))} (1 thread)"),
            ("MACs / params", f"{si(final.get('macs'))} / {num(final.get('params'))}"),
            (f"check on {final.get('check_target')}",
             f"{esc(final.get('check_status'))}, roofline {ms(final.get('check_latency_ms'))}"),
            ("ONNX", f"<code>{esc(final.get('onnx'))}</code>")])
    pruned = [t for t in trials if t.get("state") == "PRUNED" and t.get("pruned")]
    html += notes([(f"{len(pruned)} candidate(s) pruned (constraints are checked before any training), e.g. trial "
                    f"{pruned[0]['number']}: {pruned[0]['pruned']}")] if pruned else [])
    figs = []
    if len(objectives) >= 2:
        figs.append(pareto_scatter(trials, front, d.get("chosen"), objectives[1], objectives[0]))
    fig = hypervolume_figure(hv)
    if fig is not None:
        figs.append(fig)
    return Section(html, figs)
