"""``export_staged``: one ONNX model and one OpenVINO IR per stage (carried features + exit logits), a spec
file the driver reads (``early_exit.json``), and parity of the staged runtimes with torch."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..._io import (manifest_entries, output_lock, package_versions, publish, staging, update_manifest,
                   write_json_atomic)
from ...errors import ConfigError, ExportError, ParityError, ShapeError
from ...export.onnx import OnnxConfig, export_onnx
from ...export.result import ExportResult, Parity, compare_outputs
from .model import EarlyExitModel
from .runner import SPEC_NAME, RUNTIMES, StagedRunner

SPEC_FORMAT = "edgedeploy-early-exit/1"


@dataclass(frozen=True)
class StagedExportConfig:
    """``runtimes`` to write and verify (onnxruntime: .onnx; openvino: .xml IR converted from it);
    ``dynamic_batch`` keeps the batch axis free so a compacted batch of any size runs (False: static batch-1
    stages, and the driver runs one sample at a time)."""

    runtimes: tuple[str, ...] = RUNTIMES
    exporter: str = "dynamo"
    opset: int | None = None
    dynamic_batch: bool = True
    atol: float = 1e-4
    rtol: float = 1e-4

    def __post_init__(self) -> None:
        bad = [r for r in self.runtimes if r not in RUNTIMES]
        if bad or not self.runtimes:
            raise ConfigError(f"unknown staged runtime(s) {bad or '(none given)'}; choose from {', '.join(RUNTIMES)}")
        if "onnxruntime" not in self.runtimes:      # the IR is converted from the ONNX file, which is verified on ORT
            object.__setattr__(self, "runtimes", ("onnxruntime", *self.runtimes))
        OnnxConfig(exporter=self.exporter, opset=self.opset, atol=self.atol, rtol=self.rtol)  # validates those


@dataclass
class StagedExport:
    """Where the stages went, and how each runtime's staged answers compare with torch."""

    folder: Path
    spec: Path
    onnx: list[ExportResult]
    openvino: list[Path] = field(default_factory=list)
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)   # runtime -> stage parity + decisions

    def runner(self, runtime: str = "onnxruntime", threads: int | None = None) -> StagedRunner:
        """A driver over these files on ``runtime``."""
        return StagedRunner(self.folder, runtime=runtime, threads=threads)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready paths and parity."""
        return {"folder": str(self.folder), "spec": str(self.spec), "onnx": [str(r.path) for r in self.onnx],
                "openvino": [str(p) for p in self.openvino], "parity": self.parity}

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"staged early-exit export: {self.folder}")
        for c in ("runtime", "stage max abs", "labels equal", "exits equal", "confidence max abs", "borderline"):
            t.add_column(c, justify="right")
        for rt, p in self.parity.items():
            d = p["decisions"]
            t.add_row(rt, f"{max(s['max_abs'] for s in p['stages']):.3g}", f"{d['labels_equal']}/{d['samples']}",
                      f"{d['exits_equal']}/{d['samples']}", f"{d['confidence_max_abs']:.3g}", str(d["borderline"]))
        return t


def _stage_inputs(model: EarlyExitModel, x: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """Inputs of every stage when the whole batch runs every stage (no early exit)."""
    out, carry = [], (x,)
    with torch.no_grad():
        for stage in model.stages:
            out.append(carry)
            carry = tuple(stage(*carry)[:-1])
    return out


def _io_names(model: EarlyExitModel, s: int) -> tuple[list[str], list[str]]:
    ins = ["input"] if s == 0 else list(model.carry_in[s])
    outs = [f"{n}_next" for n in model.carry_out[s]] + ["logits"]
    if len(set(ins + outs)) != len(ins) + len(outs):
        raise ExportError(f"stage {s + 1} has clashing input/output names {ins} / {outs}; rename the module")
    return ins, outs


def _batch_axis(cfg: StagedExportConfig, ins: list[str], outs: list[str]) -> dict[str, Any]:
    """OnnxConfig options that keep the batch axis free: torch.export dims (dynamo) or dynamic_axes (torchscript)."""
    if not cfg.dynamic_batch:
        return {}
    if cfg.exporter == "dynamo":
        batch = torch.export.Dim("batch")
        return {"extra": {"dynamic_shapes": tuple({0: batch} for _ in ins)}}
    return {"dynamic_axes": {n: {0: "batch"} for n in ins + outs}}


def _write_ir(onnx_path: Path) -> Path:
    """The stage's OpenVINO IR (FP32, beside the ONNX file in the staging folder)."""
    import openvino as ov

    try:
        ov_model = ov.convert_model(str(onnx_path))
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"openvino.convert_model failed on {onnx_path.name}: {str(exc).strip()[:300]}") from exc
    xml = onnx_path.with_suffix(".xml")
    ov.save_model(ov_model, str(xml), compress_to_fp16=False)
    return xml


def _decision_parity(model: EarlyExitModel, x: torch.Tensor, got: Any, atol: float, runtime: str) -> dict[str, Any]:
    """Labels and exits must agree with torch, except for samples torch itself decides within ``atol``
    (a score that close to its threshold, or two classes that close in probability)."""
    from .decide import exit_scores, softmax

    ref = model.predict(x)
    thresholds = model.thresholds.tolist()
    with torch.no_grad():
        logits = [t.numpy() for t in model(x)]
    same_exit, same_label = ref.exits == got.exits, ref.labels == got.labels
    borderline = 0
    for i in np.flatnonzero(~(same_exit & same_label)):
        k = int(min(ref.exits[i], got.exits[i])) - 1
        score = exit_scores(logits[k][i:i + 1], model.criterion)[2][0]
        top2 = np.sort(softmax(logits[k][i:i + 1])[0])[-2:]
        if (k < len(thresholds) and abs(score - thresholds[k]) <= atol) or top2[1] - top2[0] <= atol:
            borderline += 1
            continue
        raise ParityError(f"staged {runtime} answers sample {i} with label {got.labels[i]} at exit {got.exits[i]} "
                          f"but torch gives label {ref.labels[i]} at exit {ref.exits[i]}; re-export with "
                          "StagedExportConfig(exporter='torchscript') or check the stage parity")
    both = same_exit & same_label
    conf = float(np.abs(ref.confidence[both] - got.confidence[both]).max()) if both.any() else 0.0
    return {"samples": len(ref), "labels_equal": int(same_label.sum()), "exits_equal": int(same_exit.sum()),
            "borderline": borderline, "confidence_max_abs": conf}


def export_staged(model: EarlyExitModel, example_inputs: Any, out: str | Path = "build/",
                  config: StagedExportConfig | None = None) -> StagedExport:
    """Write ``stageK.onnx`` (and ``stageK.xml``) per stage plus ``early_exit.json`` into ``out``; verify each
    runtime's staged answers (labels, exits, confidences) against ``model.predict`` on the example and random inputs."""
    cfg = config or StagedExportConfig()
    if not isinstance(model, EarlyExitModel):
        raise ConfigError("export_staged needs the EarlyExitModel returned by add_early_exits")
    x = example_inputs if isinstance(example_inputs, torch.Tensor) else torch.as_tensor(np.asarray(example_inputs))
    if x.ndim < 2 or len(x) < 1:
        raise ShapeError(f"example_inputs must be a batch (N, ...) of real inputs, got shape {tuple(x.shape)}")
    model.eval()
    x = x.float()
    if cfg.dynamic_batch and len(x) == 1:
        x = torch.cat([x, x])          # torch.export specializes a batch of 1: show it a batch of 2
    with output_lock(out) as folder:
        with staging(folder) as stage:          # all or nothing: published once every runtime is verified
            results, irs, parity = _export_and_verify(model, x, cfg, stage)
            names = [SPEC_NAME] + [f.name for r in results for f in r.files] + \
                [n for p in irs for n in (p.name, p.with_suffix(".bin").name)]
            publish(stage, folder, list(dict.fromkeys(names)))
            for entry in manifest_entries(stage).values():          # each stage's ONNX export record
                update_manifest(folder, entry.pop("stage"), {k: v for k, v in entry.items()
                                                             if k not in ("sha256", "written_at")})
        results = [dataclasses.replace(r, path=folder / r.path.name, files=tuple(folder / f.name for f in r.files),
                                       manifest=None) for r in results]
        irs = [folder / p.name for p in irs]
        update_manifest(folder, "early_exit", {
            "files": [SPEC_NAME] + [r.path.name for r in results] + [p.name for p in irs],
            "config": {"runtimes": list(cfg.runtimes), "exporter": cfg.exporter, "opset": cfg.opset,
                       "dynamic_batch": cfg.dynamic_batch}, "parity": parity,
            "versions": package_versions("onnx", "onnxruntime", "openvino")})
    return StagedExport(folder, folder / SPEC_NAME, results, irs, parity)


def _export_and_verify(model: EarlyExitModel, x: torch.Tensor, cfg: StagedExportConfig, folder: Path
                       ) -> tuple[list[ExportResult], list[Path], dict[str, dict[str, Any]]]:
    """Write every stage, its IR and the spec into ``folder``; check each runtime against torch there."""
    from ...frames import varied_inputs

    per_stage = _stage_inputs(model, x if cfg.dynamic_batch else x[:1])
    results, irs, stages_spec = [], [], []
    for s, stage in enumerate(model.stages):
        ins, outs = _io_names(model, s)
        onnx_cfg = OnnxConfig(exporter=cfg.exporter, opset=cfg.opset, atol=cfg.atol, rtol=cfg.rtol,
                              input_names=tuple(ins), output_names=tuple(outs), **_batch_axis(cfg, ins, outs))
        res = export_onnx(stage, per_stage[s], onnx_cfg, out=folder, name=f"stage{s + 1}")
        results.append(res)
        xml = _write_ir(res.path) if "openvino" in cfg.runtimes else None
        if xml is not None:
            irs.append(xml)
        stages_spec.append({"onnx": res.path.name, "openvino": xml.name if xml else None, "inputs": ins,
                            "outputs": outs, "macs": model.stage_macs[s], "exit": model.exit_names[s]})
    spec = {"format": SPEC_FORMAT, "criterion": model.criterion, "thresholds": model.thresholds.tolist(),
            "class_names": list(model.class_names) if model.class_names else None,
            "exit_names": list(model.exit_names), "num_classes": model.num_classes,
            "stage_macs": model.stage_macs, "full_macs": model.full_macs, "stages": stages_spec,
            "dynamic_batch": cfg.dynamic_batch}
    write_json_atomic(folder / SPEC_NAME, spec)
    checks = [("the example", x)] + [(label, xs[0]) for label, xs in varied_inputs((x,))]
    parity: dict[str, dict[str, Any]] = {}
    for rt in cfg.runtimes:
        runner = StagedRunner(folder, runtime=rt)
        stage_par: list[Parity] = []
        for s, sess in enumerate(runner.sessions):
            with torch.no_grad():
                ref = [t.numpy() for t in model.stages[s](*per_stage[s])]
            got = sess.run([t.numpy() for t in per_stage[s]])
            stage_par.append(compare_outputs(got, ref, runner.outputs[s], atol=cfg.atol, rtol=cfg.rtol, runtime=rt,
                                             reference="torch", artifact=runner.files[s]))
        decisions = [_decision_parity(model, xs, runner.predict(xs.numpy()), max(cfg.atol, 1e-5), rt)
                     for _, xs in checks]
        parity[rt] = {"stages": [p.to_dict() for p in stage_par], "checked": [c[0] for c in checks],
                      "decisions": {k: (sum(d[k] for d in decisions) if k != "confidence_max_abs"
                                        else max(d[k] for d in decisions)) for k in decisions[0]}}
    return results, irs, parity
