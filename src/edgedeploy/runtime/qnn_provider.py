"""QNN execution provider plumbing: plugin registration, option validation, HTP sessions, compile, op check.

ONNX Runtime's QNN EP (PyPI ``onnxruntime-qnn``) is a *plugin* provider: it must be registered as a
library and added with ``SessionOptions.add_provider_for_devices``; ``providers=["QNNExecutionProvider"]``
is silently ignored and runs everything on the CPU. The EP also only warns about a bad ``htp_arch`` or
``soc_model`` and accepts unknown option keys, so every option is validated here first.
The functions here run in whichever process calls them; the HTP backend itself is only ever touched from
a child process (``runtime.qnn_htp`` and the ``qnn`` runtime), because it can abort the process.
"""
from __future__ import annotations

import contextlib
import functools
import os
import platform
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArtifactError, ConfigError, ExportError, ToolchainError, UnsupportedOpError

EP_NAME = "QNNExecutionProvider"
#: Hexagon HTP architectures the bundled QNN 2.51 HTP backend compiles for.
HTP_ARCHS = (68, 69, 73, 75, 79, 81)
@functools.lru_cache(maxsize=1)
def socs() -> dict[str, tuple[int, int]]:
    """Snapdragon SoCs by part name -> (QNN soc_model id, HTP arch), from the qualcomm-htp target profile."""
    from ..targets.target import Target

    table = Target.load("qualcomm-htp").extras.get("socs") or {}
    return {name: (int(v["id"]), int(v["htp_arch"])) for name, v in table.items()}
#: provider options we pass through, with their allowed values (None: free-form, checked elsewhere)
_OPTION_VALUES: dict[str, frozenset[str] | None] = {
    "backend_type": frozenset({"htp"}),
    "backend_path": None, "htp_arch": None, "soc_model": None, "vtcm_mb": None, "device_id": None,
    "profiling_file_path": None,
    "htp_performance_mode": frozenset({"burst", "balanced", "default", "high_performance", "high_power_saver",
                                       "low_balanced", "extreme_power_saver", "low_power_saver", "power_saver",
                                       "sustained_high_performance"}),
    "htp_graph_finalization_optimization_mode": frozenset({"0", "1", "2", "3"}),
    "enable_htp_fp16_precision": frozenset({"0", "1"}),
    "offload_graph_io_quantization": frozenset({"0", "1"}),
    "enable_htp_spill_fill_buffer": frozenset({"0", "1"}),
    "profiling_level": frozenset({"off", "basic", "detailed", "optrace"}),
    "qnn_context_priority": frozenset({"low", "normal", "normal_high", "high"}),
}
_registered: list[Any] = []


def resolve_soc(soc: str | int) -> tuple[str, int, int]:
    """Map a SoC name ("SM8650") or QNN soc_model id (57) to (name, id, htp_arch); ConfigError if unknown."""
    text = str(soc).strip().upper()
    for name, (sid, arch) in socs().items():
        if text == name or text == str(sid):
            return name, sid, arch
    raise ConfigError(f"unknown Snapdragon SoC {soc!r}; choose one of: "
                      + ", ".join(f"{n} (id {i}, v{a})" for n, (i, a) in socs().items())
                      + " (the QNN provider would silently ignore it)")


def check_htp_arch(arch: int | str) -> int:
    """Return ``arch`` as an int if the HTP backend knows it ("v75" and 75 both work), else ConfigError."""
    text = str(arch).strip().lower().lstrip("v")
    if not text.isdigit() or int(text) not in HTP_ARCHS:
        raise ConfigError(f"unknown htp_arch {arch!r}; choose one of {', '.join(map(str, HTP_ARCHS))} "
                          "(the QNN provider would silently ignore it and compile for its default)")
    return int(text)


def validate_provider_options(options: Mapping[str, Any]) -> dict[str, str]:
    """Check QNN provider option keys and values (the EP accepts unknown keys silently); return them as strings."""
    out: dict[str, str] = {}
    for key, value in options.items():
        if key not in _OPTION_VALUES:
            raise ConfigError(f"unknown QNN provider option {key!r} (the provider would silently ignore it); "
                              f"valid options: {', '.join(sorted(_OPTION_VALUES))}")
        text = str(int(value) if isinstance(value, bool) else value)
        allowed = _OPTION_VALUES[key]
        if allowed is not None and text not in allowed:
            raise ConfigError(f"QNN provider option {key}={value!r} is invalid; "
                              f"choose one of {', '.join(sorted(allowed))}")
        out[key] = text
    if "htp_arch" in out:
        out["htp_arch"] = str(check_htp_arch(out["htp_arch"]))
    if "soc_model" in out:
        out["soc_model"] = str(resolve_soc(out["soc_model"])[1])
    if "vtcm_mb" in out and not out["vtcm_mb"].isdigit():
        raise ConfigError(f"QNN provider option vtcm_mb={out['vtcm_mb']!r} must be a whole number of MB")
    if out.get("enable_htp_fp16_precision") == "1" and "soc_model" not in out:
        raise ConfigError("enable_htp_fp16_precision=1 needs soc_model as well (the HTP backend rejects fp16 "
                          "without it); pass a SoC such as SM8650")
    if "backend_path" in out:
        if not Path(out["backend_path"]).is_file():
            raise ConfigError(f"QNN backend_path {out['backend_path']} does not exist; point it at libQnnHtp.so "
                              "(onnxruntime_qnn.get_qnn_htp_path()) or drop it")
        if "backend_type" in out:
            raise ConfigError("give either backend_type or backend_path to the QNN provider, not both")
    else:
        out.setdefault("backend_type", "htp")
    return out


def ensure_qnn() -> list[Any]:
    """Register the onnxruntime-qnn plugin once and return its EP devices; ToolchainError naming the fix."""
    if _registered:
        return _registered
    if platform.system() != "Linux" and platform.system() != "Windows":
        raise ToolchainError(f"the QNN HTP backend runs on Linux x86_64 or Windows only (this is {platform.system()})")
    lib, ver = platform.libc_ver()
    parts = [int(p) for p in ver.split(".")[:2] if p.isdigit()]
    if platform.system() == "Linux" and lib == "glibc" and len(parts) == 2 and tuple(parts) < (2, 35):
        raise ToolchainError(f"onnxruntime-qnn needs glibc >= 2.35 but this system has {ver}; use a newer "
                             "distribution (e.g. Debian 12, Ubuntu 22.04) or a container")
    try:
        import onnxruntime as ort
        import onnxruntime_qnn
    except ImportError as exc:
        raise ToolchainError(f"onnxruntime-qnn is not installed ({exc}); run `pip install onnxruntime-qnn` "
                             "(Linux x86_64, Python 3.11, glibc >= 2.35)") from exc
    if not any(d.ep_name == EP_NAME for d in ort.get_ep_devices()):
        try:
            ort.register_execution_provider_library(onnxruntime_qnn.get_ep_name(), onnxruntime_qnn.get_library_path())
        except Exception as exc:  # noqa: BLE001 - pybind error types
            raise ToolchainError(f"cannot register the QNN execution provider library "
                                 f"{onnxruntime_qnn.get_library_path()} ({exc}); reinstall onnxruntime-qnn with a "
                                 "matching onnxruntime (>= 1.24.2)") from exc
    devices = [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
    if not devices:
        raise ToolchainError("the QNN execution provider registered but reports no device; reinstall onnxruntime-qnn")
    _registered.extend(devices)
    return _registered


def session_options(provider_options: Mapping[str, str], *, disable_fallback: bool = True,
                    config: Mapping[str, str] | None = None, verbose: bool = False,
                    threads: int | None = None) -> Any:
    """SessionOptions with the QNN EP added through the plugin device API (never ``providers=[...]``)."""
    import onnxruntime as ort

    devices = ensure_qnn()
    so = ort.SessionOptions()
    so.log_severity_level = 0 if verbose else 4
    if threads is not None:
        so.intra_op_num_threads = threads
    if disable_fallback:
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    for key, value in (config or {}).items():
        so.add_session_config_entry(key, value)
    so.add_provider_for_devices(devices, dict(provider_options))
    return so


@dataclass(frozen=True)
class UnsupportedNode:
    """One node the QNN EP rejected: its op type, node name, torch module (when known) and QNN's reason."""

    op_type: str
    name: str
    reason: str = ""
    module: str = ""

    def describe(self) -> str:
        """``Op 'name' (module m): reason``."""
        mod = f" (torch module {self.module})" if self.module else ""
        why = f": {self.reason}" if self.reason else ""
        return f"{self.op_type} {self.name!r}{mod}{why}"


_FAILED = re.compile(r"Validation FAILED for \d+ nodes in OrtNodeUnit \((?P<unit>[^)]*)\)")
_NODE = re.compile(r"Operator type: (?P<op>\S+) Node name: (?P<name>.*?) Node index")
_REASON = re.compile(r"REASON : (?P<reason>.*)")
_SUMMARY = re.compile(r"\{ name: (?P<name>[^,]*), type: (?P<op>[^ }]+) \}")


def parse_unsupported(log: str) -> list[UnsupportedNode]:
    """Nodes ORT's verbose log says the QNN EP rejected (validation failures, then the summary line)."""
    found: dict[str, UnsupportedNode] = {}
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if not _FAILED.search(line):
            continue
        op = name = reason = ""
        for follow in lines[i + 1:i + 6]:
            if (m := _NODE.search(follow)) and not name:
                op, name = m["op"], m["name"].strip()
            elif (m := _REASON.search(follow)) and not reason:
                reason = m["reason"].strip().rstrip(".")
            elif "OrtNodeUnit" in follow:
                break
        if name and name not in found:
            found[name] = UnsupportedNode(op, name, reason)
    for m in _SUMMARY.finditer(log):
        name = m["name"].strip()
        found.setdefault(name, UnsupportedNode(m["op"], name))
    return list(found.values())


@contextlib.contextmanager
def capture_native_stderr() -> Iterator[list[str]]:
    """Redirect file descriptor 2 (where ORT's C++ logger writes) into a list holding the text afterwards."""
    out: list[str] = []
    fd, path = tempfile.mkstemp(prefix="edgedeploy-qnn-", suffix=".log")
    saved = os.dup(2)
    try:
        os.dup2(fd, 2)
        yield out
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)
        out.append(Path(path).read_text(errors="replace"))
        os.unlink(path)


def torch_module_of(node: Any) -> str:
    """The torch module a node came from: the dynamo exporter's name scopes, else the legacy node name."""
    import ast

    props = {p.key: p.value for p in getattr(node, "metadata_props", [])}
    if "pkg.torch.onnx.name_scopes" in props:
        try:
            scopes = [str(s) for s in ast.literal_eval(props["pkg.torch.onnx.name_scopes"])][1:-1]
            classes = [str(c) for c in ast.literal_eval(props.get("pkg.torch.onnx.class_hierarchy", "[]"))]
        except (ValueError, SyntaxError):
            return ""
        path = ""
        for scope in scopes:
            path = scope if not path or scope.startswith(path + ".") else f"{path}.{scope}"
        cls = classes[-2].rsplit(".", 1)[-1] if len(classes) >= 2 and path else ""
        return f"{path} ({cls})" if cls else path
    parts = [p for p in node.name.split("/") if p]
    return parts[-2] if len(parts) >= 2 else ""


def with_modules(nodes: list[UnsupportedNode], onnx_path: str | os.PathLike[str]) -> list[UnsupportedNode]:
    """Fill in the torch module of each rejected node from the ONNX graph."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    by_name = {n.name: n for n in graph.node}
    return [UnsupportedNode(u.op_type, u.name, u.reason, torch_module_of(by_name[u.name]) if u.name in by_name else "")
            for u in nodes]


_HINTS = ("try QnnConfig(activations='u16') or 'fp16' (with a soc_model), re-export with another opset, "
          "or keep the op on the host by cutting it out of the exported model")


def unsupported_error(nodes: list[UnsupportedNode], artifact: str) -> UnsupportedOpError:
    """One UnsupportedOpError naming every rejected node (kept on ``.nodes``) and the options that may help."""
    err = UnsupportedOpError(f"QNN HTP rejects {len(nodes)} node(s) of {artifact}: "
                             + "; ".join(u.describe() for u in nodes) + f". To fix: {_HINTS}")
    err.nodes = nodes  # type: ignore[attr-defined]
    return err


def open_session(path: str | os.PathLike[str], provider_options: Mapping[str, str], *,
                 config: Mapping[str, str] | None = None, threads: int | None = None) -> Any:
    """Open ``path`` on QNN HTP with CPU fallback disabled; UnsupportedOpError names every rejected node."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"model file {path} does not exist; export it first")
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(provider_options, config=config,
                                                                             threads=threads))
    except Exception as exc:  # noqa: BLE001 - pybind error types; rerun verbosely to learn which nodes failed
        error = exc
    so = session_options(provider_options, config=config, verbose=True, threads=threads)
    with capture_native_stderr() as log, contextlib.suppress(Exception):
        ort.InferenceSession(str(path), sess_options=so)
    unsupported = parse_unsupported(log[0] if log else "")
    if unsupported:
        raise unsupported_error(with_modules(unsupported, path), path.name) from error
    first = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
    hint = (" (float32 graphs often fail to finalise on the HTP emulator: quantize with activations='u8'/'u16' or "
            "use activations='fp16' with a soc_model)" if "MEM_ALLOC" in first else "")
    raise ExportError(f"the QNN HTP backend could not prepare {path.name}: {first}{hint}") from error


def is_qnn_context_model(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is an ONNX EP-context model compiled by the QNN EP (an ``EPContext`` node)."""
    import onnx

    p = Path(path)
    if not p.is_file() or p.suffix.lower() != ".onnx":
        return False
    try:
        graph = onnx.load(str(p), load_external_data=False).graph
    except Exception:  # noqa: BLE001 - not an ONNX file
        return False
    for node in graph.node:
        if node.op_type == "EPContext":
            source = next((a.s.decode() for a in node.attribute if a.name == "source"), "")
            if source in ("", EP_NAME, "QNN"):
                return True
    return False
