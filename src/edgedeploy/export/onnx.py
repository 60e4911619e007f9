"""``export_onnx``: torch -> ONNX with checker, shape inference, onnxslim, and an ONNX Runtime parity gate."""
from __future__ import annotations

import contextlib
import io
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .._io import output_lock, package_versions, update_manifest
from ..errors import ConfigError, ExportError, ParityError, UnsupportedOpError
from ._common import (as_tensors, default_name, default_names, publish, safe_name, source_hash, staging,
                      torch_outputs, varied_inputs)
from .op_origin import data_dependent_sites, modules_running, op_from_error
from .result import ExportResult, Parity, compare_outputs

EXPORTERS = ("dynamo", "torchscript")


@dataclass(frozen=True)
class OnnxConfig:
    """How to export: ``exporter`` ("dynamo" = torch.export based, "torchscript" = legacy tracer),
    ``opset`` (None = the exporter's default; GridSample needs >= 16), ``dynamic_axes``
    ({input/output name: {dim: "name"}}), ``simplify`` with onnxslim, parity tolerance
    ``atol + rtol * max|ref|`` vs torch (checked on the example and on varied inputs: random values in its
    range and real photos for image inputs), ``fallback`` to the other exporter on unsupported ops, and
    ``allow_data_dependent``: export a model whose Python code branches on tensor values anyway (the graph
    then holds only the branches the example took; refused by default)."""

    exporter: str = "dynamo"
    opset: int | None = None
    dynamic_axes: dict[str, dict[int, str]] | None = None
    simplify: bool = True
    atol: float = 1e-4
    rtol: float = 1e-4
    fallback: bool = False
    input_names: tuple[str, ...] | None = None
    output_names: tuple[str, ...] | None = None
    allow_data_dependent: bool = False
    extra: dict[str, Any] = field(default_factory=dict)   # passed to torch.onnx.export as is

    def __post_init__(self) -> None:
        if self.exporter not in EXPORTERS:
            raise ConfigError(f"unknown ONNX exporter {self.exporter!r}; choose one of: {', '.join(EXPORTERS)}")
        if self.opset is not None and not 7 <= self.opset <= 23:
            raise ConfigError(f"opset {self.opset} is out of range; use 7..23 (or None for the exporter default)")
        if self.atol < 0 or self.rtol < 0:
            raise ConfigError(f"tolerances must be >= 0 (atol={self.atol}, rtol={self.rtol})")


def export_onnx(model: Any, example_inputs: Any, config: OnnxConfig | None = None, out: str | Path = "build/",
                name: str | None = None) -> ExportResult:
    """Export ``model`` to ``out/<name>.onnx``, check and simplify it, and verify it against torch on ONNX Runtime."""
    import torch

    config = config or OnnxConfig()
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"export_onnx needs a torch nn.Module, got {type(model).__name__}")
    name = safe_name(name, "name") if name is not None else default_name(model)
    model = model.eval()
    inputs = as_tensors(example_inputs)
    reference = torch_outputs(model, inputs)
    in_names = list(config.input_names or default_names("input", len(inputs)))
    out_names = list(config.output_names or default_names("output", len(reference)))
    if len(in_names) != len(inputs) or len(out_names) != len(reference):
        raise ConfigError(f"{len(in_names)} input / {len(out_names)} output names given for a model with "
                          f"{len(inputs)} input(s) and {len(reference)} output(s)")
    notes: list[str] = []
    with output_lock(out) as folder, staging(folder) as stage:
        tmp = stage / f"{name}.onnx"
        exporter = _export_with_fallback(model, inputs, config, tmp, in_names, out_names, notes)
        proto = _check_and_simplify(tmp, config, notes)
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        if config.opset is not None and opset != config.opset:
            notes.append(f"asked for opset {config.opset} but the {exporter} exporter produced opset {opset} "
                         "(the version converter could not go lower: an op in the model has no older version)")
        parity = _parity(tmp, model, inputs, reference, config, exporter)
        files = publish(stage, folder, [tmp.name])
    hist = dict(sorted(Counter(n.op_type for n in proto.graph.node).items()))
    cfg = {**asdict(config), "exporter_used": exporter}
    details = {"exporter": exporter, "opset": opset, "inputs": {n: list(x.shape) for n, x in zip(in_names, inputs)},
               "outputs": {n: list(r.shape) for n, r in zip(out_names, reference)}, "nodes": len(proto.graph.node)}
    manifest = update_manifest(folder, "onnx", {
        "files": [files[0].name], "source": {"model": type(model).__name__, "sha256": source_hash(model)},
        "config": cfg, "details": details, "parity": parity.to_dict(), "op_histogram": hist, "warnings": notes,
        "versions": package_versions("onnx", "onnxruntime", "onnxscript", "onnxslim"),
    })
    return ExportResult(path=files[0], format="onnx", files=tuple(files), parity=parity, op_histogram=hist,
                        warnings=tuple(notes), config=cfg, details=details, manifest=manifest)


def _export_with_fallback(model: Any, inputs: tuple[Any, ...], config: OnnxConfig, path: Path,
                          in_names: list[str], out_names: list[str], notes: list[str]) -> str:
    try:
        _export(model, inputs, config, path, in_names, out_names, notes)
        return config.exporter
    except UnsupportedOpError as first:
        if not config.fallback:
            raise
        other = next(e for e in EXPORTERS if e != config.exporter)
        alt = replace(config, exporter=other, opset=None if other == "dynamo" else max(config.opset or 17, 16))
        try:
            _export(model, inputs, alt, path, in_names, out_names, notes)
        except UnsupportedOpError as second:
            raise UnsupportedOpError(f"{first} -- the fallback exporter {other!r} also failed: {second}") from second
        notes.append(f"fell back from the {config.exporter} exporter to {other} (opset {alt.opset or 'default'}) "
                     f"because: {first}")
        return other


def _export(model: Any, inputs: tuple[Any, ...], config: OnnxConfig, path: Path, in_names: list[str],
            out_names: list[str], notes: list[str]) -> None:
    import torch

    dynamo = config.exporter == "dynamo"
    kwargs: dict[str, Any] = {"input_names": in_names, "output_names": out_names, "opset_version": config.opset,
                              "dynamo": dynamo, **config.extra}
    if config.dynamic_axes:
        kwargs["dynamic_axes"] = {k: dict(v) for k, v in config.dynamic_axes.items()}
    if dynamo:
        kwargs.update(external_data=False, verbose=False)
    buf = io.StringIO()
    with _quiet_logger("torch"), warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(buf), \
            contextlib.redirect_stderr(io.StringIO()), \
            (_quiet_jit_log() if not dynamo else contextlib.nullcontext()):
        warnings.simplefilter("always")
        try:
            torch.onnx.export(model, inputs, str(path), **kwargs)
        except Exception as exc:  # noqa: BLE001 - classified below into one clear error
            raise _classify(exc, model, inputs, config) from exc
    if any("Python boolean" in str(w.message) for w in caught):     # the torchscript tracer took one branch
        _data_dependent(model, inputs, config, notes)
    seen = set(notes)
    for w in caught:
        msg = f"{config.exporter} exporter: {str(w.message).strip().splitlines()[0][:240]}"
        if "onnx" in (w.filename or "") and msg not in seen and not issubclass(w.category, FutureWarning):
            seen.add(msg)
            notes.append(msg)
    if not path.is_file():
        raise ExportError(f"the {config.exporter} exporter wrote no file for {type(model).__name__}; "
                          "try the other exporter (OnnxConfig(exporter=...))")


@contextlib.contextmanager
def _quiet_logger(name: str) -> Any:
    """Raise a logger to ERROR for the block (e.g. the dynamo exporter's 'torchvision is not installed')."""
    import logging

    log = logging.getLogger(name)
    old = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(old)


@contextlib.contextmanager
def _quiet_jit_log() -> Any:
    """Silence the torchscript exporter's C++ dump of its whole IR graph on failure (fds 1 and 2)."""
    import os
    import sys
    import tempfile

    try:
        fds = [sys.__stdout__.fileno(), sys.__stderr__.fileno()]  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError):    # no real file descriptors (embedded interpreter)
        yield
        return
    saved = [os.dup(fd) for fd in fds]
    with tempfile.TemporaryFile() as sink:
        for fd in fds:
            os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            for fd, old in zip(fds, saved):
                os.dup2(old, fd)
                os.close(old)


def _data_dependent(model: Any, inputs: tuple[Any, ...], config: OnnxConfig, notes: list[str]) -> None:
    """Refuse (or, when allowed, announce) a graph traced through Python branches on tensor values."""
    found = data_dependent_sites(model, inputs)
    sites = [s for s in found if s.kind == "control flow"] or found
    if not sites:
        return          # the tracer branched on parameters or buffers only: constants, the graph is right
    where = "; ".join(s.describe() for s in sites[:3])
    if config.allow_data_dependent:
        notes.append(f"{where}: the graph holds only the branches the example took (allow_data_dependent=True)")
        return
    raise UnsupportedOpError(f"{where}; the {config.exporter} exporter would keep only the branch this example "
                             "takes, so the ONNX would be wrong for other inputs: rewrite the branch with tensor ops "
                             "(torch.where) or move it out of forward(), or pass "
                             "OnnxConfig(allow_data_dependent=True) if every real input takes the same branch")


def _classify(exc: BaseException, model: Any, inputs: tuple[Any, ...], config: OnnxConfig) -> Exception:
    text = f"{exc}\n{exc.__cause__ or ''}"
    if "data-dependent" in text or "GuardOnDataDependent" in text:
        try:
            _data_dependent(model, inputs, replace(config, allow_data_dependent=False), [])
        except UnsupportedOpError as err:
            return err
    op = op_from_error(text)
    other = next(e for e in EXPORTERS if e != config.exporter)
    if op is None:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        return ExportError(f"the {config.exporter} exporter failed on {type(model).__name__}: {first}; try "
                           f"OnnxConfig(exporter={other!r}) or another opset, or export with --debug for details")
    where = modules_running(model, inputs, op) or [f"<unknown module> ({type(model).__name__})"]
    hints = [f"exporter={other!r} (or fallback=True)"]
    added = _opset_added(text)
    if added:
        hints.insert(0, f"opset >= {added}")
    hints.append("rewriting that module with supported ops (or registering a custom_translation_table entry)")
    return UnsupportedOpError(f"operator {op} is not supported by the {config.exporter} exporter at opset "
                              f"{config.opset or '(exporter default)'}; produced by module {', '.join(where)}; "
                              f"options: {'; '.join(hints)}")


def _opset_added(text: str) -> int | None:
    import re

    m = re.search(r"added in version (\d+)", text)
    return int(m.group(1)) if m else None


def _check_and_simplify(path: Path, config: OnnxConfig, notes: list[str]) -> Any:
    import onnx

    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto, full_check=True)
        proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"the exported ONNX graph fails onnx.checker/shape inference: "
                          f"{str(exc).strip().splitlines()[0][:300]}; try the other exporter or another opset") from exc
    if config.simplify:
        try:
            import onnxslim

            slim = onnxslim.slim(proto)
            onnx.checker.check_model(slim)
            proto = slim
        except Exception as exc:  # noqa: BLE001 - simplification is an optimization, never a blocker
            notes.append(f"onnxslim could not simplify the graph ({type(exc).__name__}: {str(exc)[:160]}); "
                         "kept the unsimplified graph")
    onnx.save(proto, str(path))
    return proto


def _parity(path: Path, model: Any, inputs: tuple[Any, ...], reference: list[Any], config: OnnxConfig,
            exporter: str) -> Parity:
    """Compare ONNX Runtime with torch on the example and on varied inputs; the worst case is reported."""
    from ..runtime import load

    session = load(path, runtime="onnxruntime")
    names = [o.name for o in session.outputs]
    other = next(e for e in EXPORTERS if e != exporter)
    hint = (f"Try OnnxConfig(exporter={other!r}), another opset, or a looser atol if the op is known to be "
            "approximate.")
    cases = [("the example", inputs, reference)]
    cases += [(label, xs, torch_outputs(model, xs)) for label, xs in varied_inputs(inputs)]
    results: list[Parity] = []
    for label, xs, ref in cases:
        try:
            got = session.run([x.detach().cpu().numpy() for x in xs])
            p = compare_outputs(got, ref, names, atol=config.atol, rtol=config.rtol, runtime="onnxruntime",
                                reference="torch", artifact=path.name, hint=hint)
        except ParityError as exc:
            if label == "the example":
                raise
            raise ParityError(f"{exc} -- on {label} inputs, while the example matched: the graph depends on the "
                              "input in a way the export did not capture (a data-dependent branch or a value "
                              "baked in as a constant)") from None
        results.append(p)
    worst = max(results, key=lambda p: p.max_abs)
    return replace(worst, checked=tuple(label for label, _, _ in cases))
