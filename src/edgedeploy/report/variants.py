"""One row per model variant (baseline, pruned, quantized ...), gathered across the steps of a run.

Which variant a number belongs to: the ``variant`` of the step's result; a step without one belongs to the
variant of the step before it (``baseline`` at the start of a run). A bench row belongs to, in order: its own
``variant`` field, the step whose artifact it timed (matched by path or file name), else the bench step's variant.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .rundir import RunRecord, StepRecord

BASELINE = "baseline"
ACCURACY_KEYS = ("top1", "accuracy", "acc", "top-1", "map50", "map", "mAP", "f1", "ssim")
PERCENT_KEYS = ("top1", "accuracy", "acc", "top-1")
UNIT_LABELS = {"map50": "% mAP@0.5", "map": "% mAP", "mAP": "% mAP", "ssim": "SSIM", "f1": "F1"}


@dataclass
class Variant:
    """What one variant costs, how fast it measured and how accurate it is; ``sources`` says where each came from."""

    name: str
    params: int | None = None
    macs: int | None = None
    size_bytes: int | None = None
    traffic_bytes: int | None = None
    energy_uj: float | None = None
    latency: dict[str, tuple[float, float]] = field(default_factory=dict)     # "runtime, N thr" -> (p50, p90) ms
    accuracy: float | None = None
    accuracy_unit: str = "%"            # "%" for top-1 style metrics, else the metric's name (ssim, mAP ...)
    exports: list[dict[str, Any]] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def fastest(self) -> tuple[str, float] | None:
        """The (runtime key, median ms) of its fastest measurement, if any."""
        if not self.latency:
            return None
        key = min(self.latency, key=lambda k: self.latency[k][0])
        return key, self.latency[key][0]


def step_variants(run: RunRecord) -> dict[int, str]:
    """The variant of every step (inherited from the step before when a step names none)."""
    current, out = BASELINE, {}
    for s in run.steps:
        current = s.variant or current
        out[s.index] = current
    return out


def bench_rows(run: RunRecord, only: StepRecord | None = None) -> list[dict[str, Any]]:
    """Every latency row of every bench step (or of ``only``), with its ``variant`` resolved and a ``label``."""
    variants = step_variants(run)
    owner = _artifact_owners(run, variants)
    rows = []
    for step in run.of_kind("bench"):
        if only is not None and step.index != only.index:
            continue
        for r in step.data.get("results", step.data.get("rows", [])):
            if not isinstance(r, dict) or not isinstance(r.get("median_ms"), (int, float)):
                continue
            art = str(r.get("artifact", ""))
            variant = (r.get("variant") or owner.get(art) or owner.get(_resolved(art, run)) or
                       owner.get(f"name:{Path(art).name}") or variants[step.index])
            threads = r.get("threads")
            key = f"{r.get('runtime', '?')}, {threads if threads else 'default'} thr"
            name = Path(art).name
            label = " · ".join([variant] + ([name] if name and name != variant else []))
            rows.append({**r, "variant": variant, "key": key, "label": f"{label} ({threads or 'default'} thr)"})
    return rows


def _artifact_owners(run: RunRecord, variants: dict[int, str]) -> dict[str, str]:
    """Artifact path (as written, and resolved) or, failing that, file name -> the variant of the step that wrote
    it (exports and step artifacts); a full path always wins over a file name another step also used."""
    exact: dict[str, str] = {}
    names: dict[str, str] = {}
    for s in run.steps:
        if s.kind in ("bench", "report"):
            continue
        paths = list(s.artifacts)
        if s.kind == "export":
            paths += [p for r in export_results(s) for p in [r.get("path", "")] + list(r.get("files", []))]
        for p in filter(None, map(str, paths)):
            found = s.find(p)
            for key in (p, str(found.resolve()) if found is not None else None):
                if key:
                    exact.setdefault(key, variants[s.index])
            names.setdefault(Path(p).name, variants[s.index])
    return {**{f"name:{k}": v for k, v in names.items()}, **exact}


def _resolved(path: str, run: RunRecord) -> str:
    p = Path(path) if Path(path).is_absolute() else run.folder / path
    return str(p.resolve()) if p.exists() else ""


def export_results(step: StepRecord) -> list[dict[str, Any]]:
    """The ExportResult dicts of an export step."""
    res = step.data.get("results", [])
    return [r for r in res if isinstance(r, dict)] if isinstance(res, list) else []


def collect_variants(run: RunRecord) -> list[Variant]:
    """The variants table: one Variant per name, in order of first appearance."""
    variants = step_variants(run)
    table: dict[str, Variant] = {}

    def get(name: str) -> Variant:
        return table.setdefault(name, Variant(name))

    accuracy_rank: dict[str, int] = {}
    for s in run.steps:
        if not s.has_data:
            continue
        v = get(variants[s.index])
        for field_name, value, rank in _facts(s):
            if field_name == "accuracy":
                if value is not None and rank >= accuracy_rank.get(v.name, -1):
                    v.accuracy, accuracy_rank[v.name] = float(value), rank
                    v.sources["accuracy"] = f"{s.kind} step {s.index}"
                    key = accuracy_key(evaluate_rows(s.data)[0] if s.kind == "evaluate" else s.data.get("metrics"))
                    v.accuracy_unit = "%" if key in PERCENT_KEYS or key is None else UNIT_LABELS.get(key, key)
            elif value is not None and (getattr(v, field_name) is None or s.kind == "profile"):
                setattr(v, field_name, value)
                v.sources[field_name] = f"{s.kind} step {s.index}"
        if s.kind == "export":
            for r in export_results(s):
                v.exports.append({**r, "step": s})
    for r in bench_rows(run):
        v = get(r["variant"])
        v.latency.setdefault(r["key"], (float(r["median_ms"]), float(r.get("p90_ms", r["median_ms"]))))
    return list(table.values())


def _facts(s: StepRecord) -> list[tuple[str, Any, int]]:
    """(field, value, accuracy priority) facts one step gives about its variant."""
    d = s.data
    if s.kind == "profile":
        totals = d.get("totals", {})
        sizes = d.get("model_size_bytes", {})
        energy = d.get("energy", {})
        e_total = sum(energy.get(k, 0.0) for k in ("compute_uj", "sram_uj", "dram_uj")) if energy else None
        return [("params", d.get("params"), 0), ("macs", d.get("macs"), 0),
                ("size_bytes", sizes.get(d.get("precision", "fp32"), sizes.get("fp32")), 0),
                ("traffic_bytes", d.get("traffic_bytes", totals.get("traffic_bytes_per_frame")), 0),
                ("energy_uj", totals.get("energy_uj", e_total), 0)]
    if s.kind == "prune":
        return [("params", d.get("params_after"), 0), ("macs", d.get("macs_after"), 0),
                ("size_bytes", d.get("size_bytes_after"), 0)]
    if s.kind == "quantize":
        return [("size_bytes", d.get("size_after_bytes"), 0), ("accuracy", d.get("accuracy_after"), 2)]
    if s.kind == "distill":
        return [("accuracy", d.get("after_top1"), 1)]
    if s.kind == "train":
        return [("accuracy", metric_accuracy(d.get("metrics", {})), 0)]
    if s.kind == "evaluate":
        rows = evaluate_rows(d)
        return [("accuracy", metric_accuracy(rows[0]) if rows else None, 3)]
    return []


def evaluate_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """An evaluate step's metrics as rows ``{"variant": ..., metric: value}``: the recipe step writes one row per
    model and artifact (the step's own model first); a single metrics dict is one row."""
    metrics = data.get("metrics")
    if isinstance(metrics, dict):
        return [{"variant": data.get("variant", ""), **metrics}] if metrics else []
    return [r for r in metrics if isinstance(r, dict)] if isinstance(metrics, list) else []


def accuracy_key(metrics: Any) -> str | None:
    """Which key of a metrics dict is its headline accuracy: top1 (or accuracy, mAP, ssim ...), else None."""
    if not isinstance(metrics, dict):
        return None
    return next((k for k in ACCURACY_KEYS if isinstance(metrics.get(k), (int, float))
                 and not isinstance(metrics.get(k), bool)), None)


def metric_accuracy(metrics: Any) -> float | None:
    """The headline accuracy of a metrics dict (see ``accuracy_key``), else None."""
    key = accuracy_key(metrics)
    return float(metrics[key]) if key is not None else None


def shipped_artifact(run: RunRecord) -> dict[str, Any] | None:
    """The artifact the run ships: the last artifact of the last export step that finished, with sha256 per file."""
    steps = [s for s in run.of_kind("export") if s.status in ("ok", "cached") and export_results(s)]
    if not steps:
        return None
    step = steps[-1]
    res = export_results(step)[-1]
    hashes = _manifest_hashes(step, res)
    files = []
    for f in res.get("files") or [res.get("path", "")]:
        found = step.find(f)
        digest = hashes.get(Path(f).name)
        if digest is None and found is not None:
            from .._io import sha256_file

            digest = sha256_file(found)
        files.append({"name": Path(f).name, "path": str(found or f), "sha256": digest,
                      "bytes": found.stat().st_size if found is not None else None})
    return {"format": res.get("format"), "path": res.get("path"), "files": files, "parity": res.get("parity"),
            "variant": step_variants(run)[step.index], "step": step.index}


def _manifest_hashes(step: StepRecord, res: dict[str, Any]) -> dict[str, str]:
    """file name -> sha256 from the artifact's manifest.json (the exporter's record), when it is there."""
    import json

    manifest = res.get("manifest")
    found = step.find(manifest) if manifest else None
    if found is None:
        return {}
    try:
        entries = json.loads(found.read_text())
    except (OSError, ValueError):
        return {}
    entry = entries.get(Path(str(res.get("path", ""))).name, {}) if isinstance(entries, dict) else {}
    hashes = entry.get("sha256", {}) if isinstance(entry, dict) else {}
    return {k: v for k, v in hashes.items() if isinstance(v, str)} if isinstance(hashes, dict) else {}
